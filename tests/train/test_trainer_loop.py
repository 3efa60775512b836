"""The Trainer's loop: run folder, keep-best, learning-rate schedule, accumulation, hooks, precision, errors."""

from __future__ import annotations

import json

import pytest
import torch
from _train_fixtures import TinyMLP, make_data, make_eval, mse_loss

from kexue.errors import ConfigError
from kexue.train import Hook, Trainer, TrainerConfig, read_metrics


def _config(tmp_path, **kw):
    base = dict(output_dir=tmp_path / "run", epochs=2, batch_size=8, learning_rate=1e-2, seed=3,
                progress_bar=False, log_every=1)
    base.update(kw)
    return TrainerConfig(**base)


def _sgd(named, cfg):
    return torch.optim.SGD([p for _, p in named], lr=cfg.learning_rate)


def test_run_folder_metrics_plot_and_exports(tmp_path):
    torch.manual_seed(0)
    model = TinyMLP(dropout=0.0)
    data = [dict(d, attention_mask=torch.ones(3, dtype=torch.long)) for d in make_data(32)]
    cfg = _config(tmp_path, eval_every=2, metric_for_best="neg_mse", warmup_ratio=0.25, max_grad_norm=1.0)
    result = Trainer(model, cfg, data, compute_loss=mse_loss, evaluate=make_eval(make_data(8, seed=5)),
                     run_config={"task": "demo"}).fit()
    run = tmp_path / "run"
    conf = json.loads((run / "config.json").read_text())
    assert conf["task"] == "demo" and conf["trainer"]["batch_size"] == 8
    records = read_metrics(run / "metrics.jsonl")
    train = [r for r in records if r["event"] == "train"]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in train] == list(range(1, 9))  # 32 / 8 = 4 steps per epoch, 2 epochs
    assert [r["step"] for r in evals] == [2, 4, 6, 8]
    for r in train:
        assert {"loss", "lr", "epoch", "examples_per_s", "grad_norm"} <= set(r)
        assert r["tokens_per_s"] > 0  # 8 examples x 3 mask tokens per step
    # linear warm-up over ceil(0.25 * 8) = 2 steps, then linear decay to 0 at step 8 (lr after each step)
    expected = [0.5, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0]
    assert [r["lr"] for r in train] == pytest.approx([1e-2 * m for m in expected])
    assert (run / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = max(evals, key=lambda r: r["neg_mse"])
    assert result["best_step"] == best["step"] and result["best_metric"] == best["neg_mse"]
    assert result["final"]["neg_mse"] == evals[-1]["neg_mse"]
    assert (run / "best" / "model.safetensors").is_file() and (run / "last" / "model.safetensors").is_file()


def test_best_export_holds_the_weights_of_the_best_step(tmp_path):
    from safetensors.torch import load_file

    scores = iter([0.1, 0.7, 0.3, 0.2])  # the second evaluation (step 4) is the best
    snapshots = {}

    class Snapshot(Hook):
        def on_evaluate(self, trainer, metrics):
            snapshots[trainer.state.global_step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    cfg = _config(tmp_path, eval_every=2, metric_for_best="score")
    trainer = Trainer(TinyMLP(dropout=0.0), cfg, make_data(32), compute_loss=mse_loss,
                      evaluate=lambda model: {"score": next(scores)}, hooks=[Snapshot()])
    result = trainer.fit()
    assert result["best_step"] == 4 and result["best_metric"] == 0.7
    saved = load_file(tmp_path / "run" / "best" / "model.safetensors")
    for key, value in snapshots[4].items():
        assert torch.equal(saved[key], value), key
    # lower-is-better picks the minimum instead
    scores = iter([0.1, 0.7, 0.3, 0.2])
    cfg = _config(tmp_path / "low", eval_every=2, metric_for_best="score", greater_is_better=False)
    result = Trainer(TinyMLP(dropout=0.0), cfg, make_data(32), compute_loss=mse_loss,
                     evaluate=lambda model: {"score": next(scores)}).fit()
    assert result["best_step"] == 2 and result["best_metric"] == 0.1


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    runs = []
    for batch_size, accumulation in ((8, 1), (4, 2)):
        torch.manual_seed(0)
        model = TinyMLP(dropout=0.0, dtype=torch.float64)
        cfg = _config(tmp_path / f"b{batch_size}", batch_size=batch_size, gradient_accumulation_steps=accumulation,
                      max_grad_norm=None, weight_decay=0.0)
        Trainer(model, cfg, make_data(36, dtype=torch.float64), compute_loss=mse_loss, optimizer_factory=_sgd).fit()
        runs.append(model)
    # 36 examples: the last global batch has 4 examples (one micro-batch of 4 vs. a half-full accumulation)
    for p, q in zip(runs[0].parameters(), runs[1].parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


def test_hook_call_order_and_loss_hooks(tmp_path):
    calls = []

    class Recorder(Hook):
        def __getattribute__(self, name):
            if name in ("setup", "on_train_begin", "on_epoch_begin", "on_step_begin", "after_backward",
                        "before_optimizer_step", "on_step_end", "on_evaluate", "on_epoch_end", "on_train_end"):
                calls.append(name)
            return object.__getattribute__(self, name)

        def transform_loss(self, trainer, batch, loss, outputs):
            calls.append("transform_loss")
            assert set(outputs) == {"loss", "mae"}
            return loss

    def loss_fn(model, batch):
        pred = model(batch["x"])
        return {"loss": torch.nn.functional.mse_loss(pred, batch["y"]), "mae": (pred - batch["y"]).abs().mean()}

    cfg = _config(tmp_path, epochs=1, batch_size=4, gradient_accumulation_steps=2)
    Trainer(TinyMLP(), cfg, make_data(8), compute_loss=loss_fn, evaluate=lambda m: {"x": 1.0},
            hooks=[Recorder()]).fit()
    step = ["on_step_begin", "transform_loss", "after_backward", "transform_loss", "after_backward",
            "before_optimizer_step", "on_step_end"]
    assert calls == ["setup", "on_train_begin", "on_epoch_begin", *step, "on_epoch_end", "on_evaluate",
                     "on_train_end"]
    assert "mae" in read_metrics(tmp_path / "run" / "metrics.jsonl")[0]


def test_after_backward_adds_gradients_and_transform_loss_replaces_the_loss(tmp_path):
    class SecondPass(Hook):  # the FGM shape: another compute_loss + backward inside the step
        def after_backward(self, trainer, batch, loss):
            trainer.backward(trainer.compute_loss(batch)["loss"])

    class Double(Hook):  # the gradient-penalty shape: loss -> loss + something
        def transform_loss(self, trainer, batch, loss, outputs):
            return loss + loss

    def run(name, lr, hooks):
        torch.manual_seed(0)
        model = TinyMLP(dropout=0.0, dtype=torch.float64)
        cfg = _config(tmp_path / name, epochs=1, learning_rate=lr, max_grad_norm=None)
        Trainer(model, cfg, make_data(16, dtype=torch.float64), compute_loss=mse_loss, optimizer_factory=_sgd,
                hooks=hooks).fit()
        return torch.cat([p.flatten() for p in model.parameters()])

    # with SGD, doubling the gradient equals doubling the learning rate
    reference = run("ref", 2e-2, [])
    torch.testing.assert_close(run("second", 1e-2, [SecondPass()]), reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(run("double", 1e-2, [Double()]), reference, rtol=0, atol=1e-12)


def test_bf16_autocast_step_is_finite(tmp_path):
    seen = []

    def loss_fn(model, batch):
        pred = model(batch["x"])
        seen.append(pred.dtype)
        return torch.nn.functional.mse_loss(pred.float(), batch["y"])

    model = TinyMLP(dropout=0.0)
    cfg = _config(tmp_path, epochs=1, precision="bf16")
    Trainer(model, cfg, make_data(16), compute_loss=loss_fn).fit()
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["event"] == "train"]
    assert losses and all(torch.isfinite(torch.tensor(losses)))


def test_max_steps_runs_exactly_that_many_steps_across_epochs(tmp_path):
    cfg = _config(tmp_path, max_steps=6, eval_every=None)  # 4 steps per epoch
    evals = []
    trainer = Trainer(TinyMLP(), cfg, make_data(32), compute_loss=mse_loss,
                      evaluate=lambda m: evals.append(1) or {"v": 0.0})
    assert trainer.fit()["global_step"] == 6
    assert len(evals) == 2  # end of epoch 1, then after the last step (mid-epoch 2)


def test_default_optimizer_exempts_bias_and_layer_norm(tmp_path):
    trainer = Trainer(TinyMLP(), _config(tmp_path, max_steps=1, weight_decay=0.1), make_data(8),
                      compute_loss=mse_loss)
    trainer.fit()
    model = trainer.model
    by_id = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"]: sorted(by_id[id(p)] for p in g["params"]) for g in trainer.optimizer.param_groups}
    assert groups[0.1] == ["net.0.weight", "net.4.weight"]
    assert groups[0.0] == ["net.0.bias", "net.1.bias", "net.1.weight", "net.4.bias"]


@pytest.mark.parametrize("bad", [lambda m, b: {"mse": mse_loss(m, b)}, lambda m, b: m(b["x"]) - b["y"]])
def test_bad_loss_output_is_a_config_error(tmp_path, bad):
    with pytest.raises(ConfigError, match="compute_loss"):
        Trainer(TinyMLP(), _config(tmp_path), make_data(8), compute_loss=bad).fit()


def test_unknown_metric_for_best_names_the_option(tmp_path):
    cfg = _config(tmp_path, epochs=1, metric_for_best="spearman")
    with pytest.raises(ConfigError, match="metric_for_best.*spearman"):
        Trainer(TinyMLP(), cfg, make_data(8), compute_loss=mse_loss, evaluate=lambda m: {"f1": 0.5}).fit()
    with pytest.raises(ConfigError, match="metric_for_best"):
        Trainer(TinyMLP(), cfg, make_data(8), compute_loss=mse_loss)


def test_progress_bar_shows_loss_lr_and_throughput(tmp_path, capsys):
    cfg = _config(tmp_path, epochs=1, progress_bar=True)
    Trainer(TinyMLP(), cfg, make_data(16), compute_loss=mse_loss).fit()
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err and "lr=" in err and "ex/s=" in err
