"""Parameters without a gradient on some steps: the accumulating optimizers skip them, as torch.optim does.

Defect: AccumAdam moved a parameter whose ``.grad`` was None with its stale momentum (a parameter used only in
steps 1-2 ended at 0.5611 after 6 steps, torch.optim.Adam leaves it at 0.8004). Spec training.md §1.
"""

from __future__ import annotations

import pytest
import torch

from kexue.errors import ConfigError
from kexue.optim import AccumAdam, AccumAdamW, AccumSGDM

DT = torch.float64


def _grads_for(step: int, used: torch.Tensor, sometimes: torch.Tensor, pattern: set[int]):
    """Loss touching ``used`` on every step and ``sometimes`` only on steps in ``pattern`` (1-based)."""
    loss = ((used - 0.3 * step) ** 2).sum() + torch.sin(used).sum()
    if step in pattern:
        loss = loss + ((sometimes + 0.5) ** 2 * (1 + step % 3)).sum()
    return loss


@pytest.mark.parametrize("ours_cls, ref_cls, wd", [(AccumAdam, torch.optim.Adam, 0.0),
                                                   (AccumAdam, torch.optim.Adam, 0.1),
                                                   (AccumAdamW, torch.optim.AdamW, 0.05)])
def test_k1_matches_torch_adam_with_none_gradients(ours_cls, ref_cls, wd) -> None:
    pattern = {1, 2, 5, 9, 10}
    a = [torch.tensor([0.8, -0.2], dtype=DT, requires_grad=True), torch.tensor([1.0, 2.0], dtype=DT,
                                                                                 requires_grad=True)]
    b = [t.detach().clone().requires_grad_(True) for t in a]
    ours = ours_cls(a, lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
    ref = ref_cls(b, lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
    for step in range(1, 13):
        for params, opt in ((a, ours), (b, ref)):
            opt.zero_grad(set_to_none=True)
            _grads_for(step, params[0], params[1], pattern).backward()
            assert (params[1].grad is None) == (step not in pattern)
            opt.step()
        for x, y in zip(a, b):
            assert (x - y).abs().max().item() <= 1e-12
    assert int(ours.state[a[1]]["step"]) == len(pattern)  # per-parameter update count, as torch's


def test_unused_after_step_two_stays_put_like_torch() -> None:
    """The issue's scenario: used only in steps 1-2, then 4 steps without a gradient."""
    p = torch.tensor([1.0], requires_grad=True)
    q = p.detach().clone().requires_grad_(True)
    ours, ref = AccumAdam([p], lr=0.1), torch.optim.Adam([q], lr=0.1)
    for step in range(1, 7):
        for x, opt in ((p, ours), (q, ref)):
            opt.zero_grad(set_to_none=True)
            if step <= 2:
                (x * 1.0).sum().backward()
            opt.step()
    assert float(p.detach()) == pytest.approx(0.8, abs=1e-6)  # two Adam steps of lr 0.1, constant gradient
    assert float(p.detach()) == float(q.detach())


def test_k1_sgdm_matches_torch_sgd_with_none_gradients() -> None:
    beta, lr = 0.9, 0.1
    pattern = {1, 3, 4, 8}
    a = [torch.tensor([0.5, 1.5], dtype=DT, requires_grad=True), torch.tensor([-1.0], dtype=DT,
                                                                                requires_grad=True)]
    b = [t.detach().clone().requires_grad_(True) for t in a]
    ours = AccumSGDM(a, lr=lr, momentum=beta)
    ref = torch.optim.SGD(b, lr=lr * (1 - beta), momentum=beta, dampening=0.0)
    for step in range(1, 11):
        for params, opt in ((a, ours), (b, ref)):
            opt.zero_grad(set_to_none=True)
            _grads_for(step, params[0], params[1], pattern).backward()
            opt.step()
    for x, y in zip(a, b):
        assert (x - y).abs().max().item() <= 1e-12


def _reference_accum_adam(theta0, grads_by_step, k, lr, betas, eps):
    """Spec §1's formula per parameter, with torch's rule for a cycle without any gradient: skip it.

    ``grads_by_step[t]`` is the micro-gradient at step t (1-based) or None. Within a cycle that has at least one
    gradient, missing micro-gradients count as zero (classic accumulation sums the ``.grad`` that exist).
    """
    theta, m, v, n = theta0.clone(), torch.zeros_like(theta0), torch.zeros_like(theta0), 0
    steps = len(grads_by_step)
    for start in range(1, steps + 1, k):
        cycle = [grads_by_step[t] for t in range(start, start + k)]
        present = [g for g in cycle if g is not None]
        if not present:
            continue
        m = betas[0] * m + (1 - betas[0]) * torch.stack(present).sum(0) / k
        v = betas[1] * v + (1 - betas[1]) * (torch.stack(present) ** 2).sum(0) / k
        n += 1
        theta = theta - lr * (m / (1 - betas[0] ** n)) / ((v / (1 - betas[1] ** n)).sqrt() + eps)
    return theta


def test_k_gt_1_cycles_stay_aligned_with_missing_gradients() -> None:
    k, lr, betas, eps = 3, 0.05, (0.9, 0.999), 1e-8
    gen = torch.Generator().manual_seed(4)
    steps = 15
    # cycles: [1-3] grads on 2,3 (first micro-step missing); [4-6] none; [7-9] only 9; [10-12] all; [13-15] 13
    present = {2, 3, 9, 10, 11, 12, 13}
    grads = {t: (torch.randn(3, generator=gen, dtype=DT) if t in present else None) for t in range(1, steps + 1)}
    always = {t: torch.randn(2, generator=gen, dtype=DT) for t in range(1, steps + 1)}
    sometimes = torch.tensor([0.3, -0.7, 1.1], dtype=DT, requires_grad=True)
    other = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    solo = other.detach().clone().requires_grad_(True)
    opt = AccumAdam([sometimes, other], lr=lr, betas=betas, eps=eps, accumulation_steps=k)
    opt_solo = AccumAdam([solo], lr=lr, betas=betas, eps=eps, accumulation_steps=k)
    for t in range(1, steps + 1):
        before = sometimes.detach().clone()
        sometimes.grad = None if grads[t] is None else grads[t].clone()
        other.grad = always[t].clone()
        solo.grad = always[t].clone()
        opt.step()
        opt_solo.step()
        assert opt.is_update_step == (t % k == 0)
        if t % k or t in (6,):  # between updates, and at the end of the cycle without gradients
            assert torch.equal(before, sometimes.detach())
        assert torch.equal(other.detach(), solo.detach())  # the other parameter's cycle is unaffected
    expected = _reference_accum_adam(torch.tensor([0.3, -0.7, 1.1], dtype=DT), grads, k, lr, betas, eps)
    assert (sometimes.detach() - expected).abs().max().item() <= 1e-12
    assert int(opt.state[sometimes]["step"]) == 4


def test_zero_fill_option_keeps_the_old_behaviour() -> None:
    """``missing_grad="zero"``: a parameter with state and no gradient is fed a zero gradient (moves on momentum)."""
    p = torch.tensor([1.0], dtype=DT, requires_grad=True)
    opt = AccumAdam([p], lr=0.1, missing_grad="zero")
    m = v = 0.0
    theta = 1.0
    b1, b2 = 0.9, 0.999
    for step in range(1, 7):
        opt.zero_grad(set_to_none=True)
        g = 1.0 if step <= 2 else 0.0
        if step <= 2:
            p.sum().backward()
        opt.step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta -= 0.1 * (m / (1 - b1 ** step)) / ((v / (1 - b2 ** step)) ** 0.5 + 1e-8)
    assert float(p.detach()) == pytest.approx(theta, abs=1e-12)
    assert float(p.detach()) < 0.6  # kept moving after its gradient disappeared
    with pytest.raises(ConfigError, match="missing_grad"):
        AccumAdam([p], missing_grad="ignore")
