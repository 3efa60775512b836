"""The hook points carry an FGM-style regulariser (Su's "update from the perturbed loss only" form) exactly:
a Trainer with the hook reaches the parameters of a hand-written loop doing the same steps."""

from __future__ import annotations

import torch
from torch import nn

from kexue.train import Hook, Trainer, TrainerConfig


class BagModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(ids).mean(1)).squeeze(-1)


def loss_fn(model, batch):
    return nn.functional.mse_loss(model(batch["ids"]), batch["y"])


def perturbation(loss, weight, epsilon):
    (grad,) = torch.autograd.grad(loss, weight)
    return epsilon * grad / (grad.norm() + 1e-8)


class AdversarialOnly(Hook):
    """FGM on the embedding matrix; the step's gradient is the perturbed loss's (kexue.fm/archives/7234)."""

    def __init__(self, epsilon):
        self.epsilon, self.delta = epsilon, None

    def transform_loss(self, trainer, batch, loss, outputs):
        weight = trainer.model.embed.weight
        self.delta = perturbation(loss, weight, self.epsilon)
        with torch.no_grad():
            weight.add_(self.delta)
        return trainer.compute_loss(batch)["loss"]

    def after_backward(self, trainer, batch, loss):
        with torch.no_grad():
            trainer.model.embed.weight.sub_(self.delta)


def test_fgm_shaped_hook_matches_a_hand_written_loop(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = [{"ids": torch.randint(0, 10, (5,), generator=g), "y": torch.randn((), generator=g, dtype=torch.float64)}
            for _ in range(12)]
    torch.manual_seed(0)
    model = BagModel().double()
    reference = BagModel().double()
    reference.load_state_dict(model.state_dict())
    initial = [p.detach().clone() for p in model.parameters()]
    cfg = TrainerConfig(output_dir=tmp_path, epochs=1, batch_size=4, learning_rate=0.1, max_grad_norm=None,
                        progress_bar=False)
    sgd = lambda named, c: torch.optim.SGD([p for _, p in named], lr=c.learning_rate)  # noqa: E731
    trainer = Trainer(model, cfg, data, compute_loss=loss_fn, optimizer_factory=sgd, hooks=[AdversarialOnly(0.5)])
    order = trainer.epoch_batches(0)
    trainer.fit()

    opt = torch.optim.SGD(reference.parameters(), lr=0.1)  # the lr schedule is 1 - s/3 (no warm-up)
    for step, idx in enumerate(order):
        for group in opt.param_groups:
            group["lr"] = 0.1 * (1 - step / 3)
        batch = {"ids": torch.stack([data[i]["ids"] for i in idx]), "y": torch.stack([data[i]["y"] for i in idx])}
        delta = perturbation(loss_fn(reference, batch), reference.embed.weight, 0.5)
        with torch.no_grad():
            reference.embed.weight.add_(delta)
        loss_fn(reference, batch).backward()
        with torch.no_grad():
            reference.embed.weight.sub_(delta)
        opt.step()
        opt.zero_grad()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    assert all((p - p0).abs().max() > 1e-3 for p, p0 in zip(model.parameters(), initial))
