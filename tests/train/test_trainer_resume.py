"""Exact resume: a run killed after k steps and resumed ends with bit-identical parameters and state."""

from __future__ import annotations

import pytest
import torch
from _train_fixtures import TinyMLP, make_data, make_eval, mse_loss

from kexue.errors import ConfigError
from kexue.train import EMAHook, Hook, Trainer, TrainerConfig, find_latest_checkpoint, read_metrics


class Kill(Hook):
    """Raises after optimizer step ``at`` (simulates a killed process)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.state.global_step == self.at:
            raise KeyboardInterrupt(f"killed at step {self.at}")


def _run(out, *, kill_at=None, resume=False, accumulation=1):
    torch.manual_seed(123)  # the caller seeds model construction
    model = TinyMLP(dropout=0.2)
    data = make_data(40)
    ema = EMAHook(decay=0.9)
    hooks = [ema] + ([Kill(kill_at)] if kill_at is not None else [])
    cfg = TrainerConfig(output_dir=out, epochs=2, batch_size=4, gradient_accumulation_steps=accumulation,
                        learning_rate=1e-2, warmup_ratio=0.2, save_every=3, eval_every=4, log_every=2,
                        metric_for_best="neg_mse", seed=7, resume=resume, progress_bar=False)
    trainer = Trainer(model, cfg, data, compute_loss=mse_loss, evaluate=make_eval(make_data(12, seed=2)),
                      hooks=hooks)
    return trainer, trainer.fit, ema


def _strip_timing(records):
    return [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in records]


@pytest.mark.parametrize("accumulation,kill_at", [(1, 7), (2, 4)])
def test_resume_is_bit_identical(tmp_path, accumulation, kill_at):
    trainer_a, fit_a, ema_a = _run(tmp_path / "a", accumulation=accumulation)
    result_a = fit_a()

    trainer_b, fit_b, _ = _run(tmp_path / "b", kill_at=kill_at, accumulation=accumulation)
    with pytest.raises(KeyboardInterrupt):
        fit_b()
    # the latest checkpoint is from before the kill, in the middle of the first epoch
    latest = find_latest_checkpoint(tmp_path / "b" / "checkpoints")
    assert latest is not None and latest.name == f"step-{(kill_at - 1) // 3 * 3:08d}"
    trainer_c, fit_c, ema_c = _run(tmp_path / "b", resume=True, accumulation=accumulation)
    result_c = fit_c()
    assert trainer_c.resumed

    assert trainer_a.state.global_step == trainer_c.state.global_step == (20 if accumulation == 1 else 10)
    for (name, p), (_, q) in zip(trainer_a.model.named_parameters(), trainer_c.model.named_parameters()):
        assert torch.equal(p, q), name
    for p, q in zip(ema_a.averaged.parameters(), ema_c.averaged.parameters()):
        assert torch.equal(p, q)
    for sa, sc in zip(trainer_a.optimizer.state.values(), trainer_c.optimizer.state.values()):
        assert torch.equal(sa["exp_avg_sq"], sc["exp_avg_sq"])
    assert result_a == result_c
    # the log of the resumed run equals the uninterrupted one (apart from throughput)
    assert _strip_timing(read_metrics(tmp_path / "a" / "metrics.jsonl")) == \
        _strip_timing(read_metrics(tmp_path / "b" / "metrics.jsonl"))


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    _, fit, _ = _run(tmp_path / "r", kill_at=4)
    with pytest.raises(KeyboardInterrupt):
        fit()
    with pytest.raises(ConfigError, match="resume"):
        _run(tmp_path / "r")[1]()


def test_resume_rejects_a_different_batch_size(tmp_path):
    _, fit, _ = _run(tmp_path / "r", kill_at=4)
    with pytest.raises(KeyboardInterrupt):
        fit()
    torch.manual_seed(123)
    cfg = TrainerConfig(output_dir=tmp_path / "r", epochs=2, batch_size=8, save_every=3, seed=7, resume=True,
                        progress_bar=False)
    trainer = Trainer(TinyMLP(dropout=0.2), cfg, make_data(40), compute_loss=mse_loss, hooks=[EMAHook(0.9)])
    with pytest.raises(ConfigError, match="--batch-size: 4 -> 8"):
        trainer.fit()
