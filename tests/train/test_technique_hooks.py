"""Trainer hooks over the technique units: FGM, gradient penalties, ChildTuning-D, and the optimizer factory."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.optim import ChildTuningAdamW, compute_fisher_mask
from kexue.train import Hook, Trainer, TrainerConfig
from kexue.train.technique_hooks import (ChildTuningDHook, FGMHook, GradientPenaltyHook, build_optimizer_factory,
                                         parameter_groups)


class TinyText(nn.Module):
    """Embedding -> tanh -> mean over positions -> dropout -> Linear(4, 2), float64."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 4)
        self.drop = nn.Dropout(dropout)
        self.layer = nn.Linear(4, 2)
        self.double()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.emb

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layer(self.drop(torch.tanh(self.emb(ids)).mean(1)))

    def from_embeds(self, e: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.tanh(e).mean(1))


def _data(n: int = 8) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 12, (n, 5), generator=g)
    return [{"ids": ids[i], "y": torch.tensor(int(ids[i].sum()) % 2)} for i in range(n)]


def _loss(model: nn.Module, batch) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch["ids"]), batch["y"])


def _sgd(named, config):
    return torch.optim.SGD([p for _, p in named], lr=config.learning_rate)


def _one_step(tmp_path, hook: Hook, model: nn.Module, data) -> Trainer:
    cfg = TrainerConfig(output_dir=tmp_path, max_steps=1, batch_size=len(data), learning_rate=1.0,
                        max_grad_norm=None, progress_bar=False, weight_decay=0.0)
    trainer = Trainer(model, cfg, data, compute_loss=_loss, optimizer_factory=_sgd, hooks=[hook])
    trainer.fit()
    return trainer


def _batch(data):
    return {"ids": torch.stack([d["ids"] for d in data]), "y": torch.stack([d["y"] for d in data])}


@pytest.mark.parametrize("mode", ["adv_only", "clean_plus_adv"])
def test_fgm_hook_step_equals_hand_computed_fgm(tmp_path, mode):
    data, model = _data(), TinyText()
    ref = copy.deepcopy(model)
    batch = _batch(data)
    eps = 0.7
    clean = _loss(ref, batch)
    (g_e,) = torch.autograd.grad(clean, ref.emb.weight)
    delta = eps * g_e / (g_e.norm() + 1e-8)
    params = list(ref.parameters())
    g_clean = torch.autograd.grad(_loss(ref, batch), params)
    with torch.no_grad():
        ref.emb.weight += delta
    g_adv = torch.autograd.grad(_loss(ref, batch), params)
    with torch.no_grad():
        ref.emb.weight -= delta
    grads = g_adv if mode == "adv_only" else [a + c for a, c in zip(g_adv, g_clean)]
    before = [p.detach().clone() for p in model.parameters()]
    _one_step(tmp_path, FGMHook(eps, mode), model, data)
    for p, p0, g in zip(model.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), p0 - g, rtol=0, atol=1e-12)


def test_fgm_hook_restores_embedding_and_rejects_frozen_embedding(tmp_path):
    data, model = _data(), TinyText()
    e0 = model.emb.weight.detach().clone()
    cfg = TrainerConfig(output_dir=tmp_path / "a", max_steps=1, batch_size=8, learning_rate=1e-9,
                        progress_bar=False)
    seen = {}

    class Probe(Hook):
        def before_optimizer_step(self, trainer):  # after FGM's perturbed backward, before the update
            seen["equal"] = torch.equal(trainer.model.emb.weight, e0)

    Trainer(model, cfg, data, compute_loss=_loss, optimizer_factory=_sgd, hooks=[FGMHook(1.0), Probe()]).fit()
    assert seen["equal"]
    frozen = TinyText()
    frozen.emb.weight.requires_grad_(False)
    with pytest.raises(ConfigError, match="frozen"):
        Trainer(frozen, TrainerConfig(output_dir=tmp_path / "b", max_steps=1, progress_bar=False), data,
                compute_loss=_loss, hooks=[FGMHook()]).fit()


@pytest.mark.parametrize("kind", ["input", "parameter"])
def test_gradient_penalty_hook_equals_double_backward_by_hand(tmp_path, kind):
    data, model = _data(), TinyText()
    ref = copy.deepcopy(model)
    batch = _batch(data)
    eps = 0.3
    params = list(ref.parameters())
    e = ref.emb(batch["ids"])
    loss = nn.functional.cross_entropy(ref.from_embeds(e), batch["y"])
    wrt = [e] if kind == "input" else params
    grads = torch.autograd.grad(loss, wrt, create_graph=True)
    sq = sum((g * g).sum() for g in grads)
    total = loss + (0.5 * eps * sq if kind == "input" else eps * sq)
    expected = torch.autograd.grad(total, params)
    assert all(float(g.abs().sum()) > 0 for g in expected)
    before = [p.detach().clone() for p in model.parameters()]
    _one_step(tmp_path, GradientPenaltyHook(eps, kind), model, data)
    for p, p0, g in zip(model.parameters(), before, expected):
        torch.testing.assert_close(p.detach(), p0 - g, rtol=0, atol=1e-12)


def test_gradient_penalty_options_are_checked():
    with pytest.raises(ConfigError, match="gradient-penalty"):
        GradientPenaltyHook(-1.0)
    with pytest.raises(ConfigError, match="kind"):
        GradientPenaltyHook(1.0, "hidden")


class Kill(Hook):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer):
        if trainer.state.global_step == self.at:
            raise KeyboardInterrupt


def _ct_run(out, *, hooks_extra=(), resume=False, fgm=False, dropout=0.2):
    torch.manual_seed(5)
    model = TinyText(dropout=dropout)
    hook = ChildTuningDHook(0.5, param_filter=None)
    hooks = [hook] + ([FGMHook(0.5)] if fgm else []) + list(hooks_extra)
    cfg = TrainerConfig(output_dir=out, epochs=2, batch_size=2, learning_rate=0.05, weight_decay=0.0, seed=11,
                        save_every=3, progress_bar=False, resume=resume)
    factory = build_optimizer_factory("child-tuning-d", reserve_p=0.5)
    return Trainer(model, cfg, _data(), compute_loss=_loss, optimizer_factory=factory, hooks=hooks), hook


def test_child_tuning_d_hook_installs_the_fisher_mask_and_masked_weights_never_move(tmp_path):
    trainer, hook = _ct_run(tmp_path / "a", dropout=0.0)  # the Fisher pass is then deterministic
    initial = copy.deepcopy(trainer.model)
    expected = compute_fisher_mask(initial, [b for _, b in trainer.train_batches(0)], _loss, reserve_p=0.5,
                                   param_filter=None)
    trainer.fit()
    opt = trainer.optimizer
    assert isinstance(opt, ChildTuningAdamW) and hook.done and hook.fisher_batches == 4
    by_name = dict(trainer.model.named_parameters())
    assert {n for n in expected} == {n for n, p in by_name.items() if p in opt._masks}
    for name, mask in expected.items():
        assert torch.equal(opt._masks[by_name[name]], mask), name
        p0, p1 = dict(initial.named_parameters())[name], by_name[name]
        assert torch.equal(p1[~mask], p0[~mask]), name  # weight_decay=0: masked entries are bit-identical
        assert not torch.equal(p1[mask], p0[mask]), name
    density = sum(int(m.sum()) for m in expected.values()) / sum(m.numel() for m in expected.values())
    assert hook.density == pytest.approx(density) and 0.4 <= density <= 0.6


@pytest.mark.parametrize("fgm", [False, True])
def test_resume_with_technique_hooks_is_bit_identical(tmp_path, fgm):
    full, _ = _ct_run(tmp_path / "full", fgm=fgm)
    full.fit()
    killed, _ = _ct_run(tmp_path / "b", hooks_extra=[Kill(5)], fgm=fgm)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed, hook = _ct_run(tmp_path / "b", resume=True, fgm=fgm)
    resumed.fit()
    assert resumed.resumed and hook.done and hook.fisher_batches == 4  # restored, the pass did not run again
    for (name, p), q in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name


def test_child_tuning_d_hook_needs_a_d_mode_optimizer(tmp_path):
    trainer = Trainer(TinyText(), TrainerConfig(output_dir=tmp_path, max_steps=1, progress_bar=False), _data(),
                      compute_loss=_loss, hooks=[ChildTuningDHook(0.3)])
    with pytest.raises(ConfigError, match="ChildTuningAdamW"):
        trainer.fit()


def test_parameter_groups_apply_multipliers_and_no_decay():
    model = TinyText()
    groups = parameter_groups(list(model.named_parameters()), 1e-3, 0.01, no_decay={"layer.bias"},
                              lr_multipliers={"layer": 10.0})
    lrs = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["param_names"]}
    assert lrs == {"emb.weight": (1e-3, 0.01), "layer.weight": (1e-2, 0.01), "layer.bias": (1e-2, 0.0)}
    with pytest.raises(ConfigError, match="matched no"):
        parameter_groups(list(model.named_parameters()), 1e-3, 0.0, lr_multipliers={"crf": 100.0})


def test_factory_rejects_mixed_accumulation(tmp_path):
    with pytest.raises(ConfigError, match="accum"):
        build_optimizer_factory("adamw", accumulation_steps=2)
    with pytest.raises(ConfigError, match="--optimizer"):
        build_optimizer_factory("lamb")
    factory = build_optimizer_factory("accum-adamw", accumulation_steps=2)
    cfg = TrainerConfig(output_dir=tmp_path, gradient_accumulation_steps=2)
    with pytest.raises(ConfigError, match="gradient_accumulation_steps"):
        factory(list(TinyText().named_parameters()), cfg)


def test_accum_adamw_through_the_trainer_moves_weights_every_kth_step_only(tmp_path):
    snapshots = []

    class Snap(Hook):
        def on_step_end(self, trainer):
            snapshots.append([p.detach().clone() for p in trainer.model.parameters()])

    model = TinyText()
    start = [p.detach().clone() for p in model.parameters()]
    cfg = TrainerConfig(output_dir=tmp_path, max_steps=6, batch_size=2, learning_rate=1e-2, progress_bar=False)
    Trainer(model, cfg, _data(), compute_loss=_loss, hooks=[Snap()],
            optimizer_factory=build_optimizer_factory("accum-adamw", accumulation_steps=3)).fit()
    prev = start
    for step, snap in enumerate(snapshots, 1):
        same = all(torch.equal(a, b) for a, b in zip(prev, snap))
        assert same == (step % 3 != 0), step
        prev = snap


def test_child_tuning_f_with_p_one_equals_adamw_through_the_trainer(tmp_path):
    results = []
    for i, name in enumerate(["adamw", "child-tuning-f"]):
        torch.manual_seed(0)
        model = TinyText()
        cfg = TrainerConfig(output_dir=tmp_path / str(i), max_steps=4, batch_size=2, learning_rate=1e-2,
                            progress_bar=False)
        Trainer(model, cfg, _data(), compute_loss=_loss,
                optimizer_factory=build_optimizer_factory(name, reserve_p=1.0)).fit()
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))
