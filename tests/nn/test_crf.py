"""CRF: brute force over all label paths, parity with pytorch-crf, masks, lr multiplier (training.md §10)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchcrf import CRF as TorchCRF

from kexue.errors import ConfigError
from kexue.nn.crf import CRF, crf_param_groups, tags_to_lists


def _brute_force(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list]:
    """log Z and the argmax path of each sequence by enumerating all K^n paths over the valid positions."""
    trans, start, end = crf.transitions, crf.start_transitions, crf.end_transitions
    log_z, best = [], []
    for b in range(emissions.shape[0]):
        pos = mask[b].nonzero().flatten().tolist()
        scores, paths = [], []
        for path in itertools.product(range(crf.num_tags), repeat=len(pos)):
            s = start[path[0]] + end[path[-1]]
            s = s + sum(emissions[b, t, y] for t, y in zip(pos, path, strict=True))
            s = s + sum(trans[path[n], path[n + 1]] for n in range(len(path) - 1))
            scores.append(s)
            paths.append(list(path))
        stacked = torch.stack(scores)
        log_z.append(torch.logsumexp(stacked, 0))
        best.append(paths[int(stacked.argmax())])
    return torch.stack(log_z), best


@pytest.mark.parametrize("lr_multiplier", [1.0, 10.0])
def test_log_partition_and_viterbi_equal_brute_force(lr_multiplier: float) -> None:
    crf = CRF(3, lr_multiplier=lr_multiplier).double()
    with torch.no_grad():
        crf.set_transitions(torch.randn(3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64),
                            torch.randn(3, dtype=torch.float64))
    emissions = torch.randn(4, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [1, 0, 1, 1, 1]]).bool()
    log_z, best = _brute_force(crf, emissions, mask)
    torch.testing.assert_close(crf.log_partition(emissions, mask), log_z, atol=1e-10, rtol=0)
    assert tags_to_lists(crf.decode(emissions, mask), mask) == best
    # a path probability is below one, so its NLL is positive
    tags = torch.randint(0, 3, (4, 5))
    nll = crf(emissions, tags, mask, reduction="none")
    assert (nll > 0).all()


def test_parity_with_pytorch_crf() -> None:
    gen = torch.Generator().manual_seed(3)
    num_tags, batch, length = 5, 6, 9
    ours = CRF(num_tags)
    ref = TorchCRF(num_tags, batch_first=True)
    with torch.no_grad():
        ours.set_transitions(ref.transitions, ref.start_transitions, ref.end_transitions)
    emissions = torch.randn(batch, length, num_tags, generator=gen)
    tags = torch.randint(0, num_tags, (batch, length), generator=gen)
    lengths = torch.tensor([9, 7, 1, 5, 9, 3])
    mask = torch.arange(length)[None] < lengths[:, None]  # pytorch-crf: left-aligned, first step on
    ref_ll = ref(emissions, tags, mask, reduction="none")
    torch.testing.assert_close(-ours(emissions, tags, mask, reduction="none"), ref_ll, atol=1e-5, rtol=1e-6)
    assert tags_to_lists(ours.decode(emissions, mask), mask) == ref.decode(emissions, mask)
    assert (ours.decode(emissions, mask)[~mask] == -1).all()


def test_masked_trailing_steps_do_not_change_loss() -> None:
    crf = CRF(4)
    emissions = torch.randn(1, 6, 4)
    tags = torch.randint(0, 4, (1, 6))
    short = crf(emissions[:, :4], tags[:, :4])
    noisy = emissions.clone()
    noisy[:, 4:] = torch.randn(1, 2, 4) * 100
    padded = crf(noisy, tags, torch.tensor([[1, 1, 1, 1, 0, 0]]))
    torch.testing.assert_close(short, padded)


def test_gradient_is_expected_minus_gold_transition_counts() -> None:
    crf = CRF(3).double()
    emissions = torch.randn(1, 4, 3, dtype=torch.float64)
    tags = torch.tensor([[0, 2, 2, 1]])
    crf(emissions, tags).backward()
    # expected transition counts by brute force
    paths = list(itertools.product(range(3), repeat=4))
    trans, start, end = crf.transitions.detach(), crf.start_transitions.detach(), crf.end_transitions.detach()
    scores = torch.stack([start[p[0]] + end[p[-1]] + sum(emissions[0, t, y] for t, y in enumerate(p))
                          + sum(trans[p[n], p[n + 1]] for n in range(3)) for p in paths])
    probs = scores.softmax(0)
    expected = torch.zeros(3, 3, dtype=torch.float64)
    for prob, p in zip(probs, paths, strict=True):
        for n in range(3):
            expected[p[n], p[n + 1]] += prob
    gold = torch.zeros(3, 3, dtype=torch.float64)
    for a, b in [(0, 2), (2, 2), (2, 1)]:
        gold[a, b] += 1
    torch.testing.assert_close(crf.stored_transitions.grad, expected - gold, atol=1e-10, rtol=0)


def _train(crf: CRF, optimizer: torch.optim.Optimizer, steps: int, data: tuple) -> torch.Tensor:
    emissions, tags = data
    for _ in range(steps):
        optimizer.zero_grad()
        crf(emissions, tags).backward()
        optimizer.step()
    return crf.transitions.detach().clone()


def test_lr_multiplier_is_lambda_under_adam_and_lambda_squared_under_sgd() -> None:
    lam, lr = 10.0, 1e-3
    data = (torch.randn(4, 6, 3, dtype=torch.float64), torch.randint(0, 3, (4, 6)))
    init = (torch.randn(3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64),
            torch.randn(3, dtype=torch.float64))

    def make(multiplier: float) -> CRF:
        crf = CRF(3, lr_multiplier=multiplier).double()
        crf.set_transitions(*init)
        return crf

    reparam, plain = make(lam), make(1.0)
    a = _train(reparam, torch.optim.Adam(reparam.parameters(), lr=lr, eps=0.0), 50, data)
    b = _train(plain, torch.optim.Adam(plain.parameters(), lr=lr * lam, eps=0.0), 50, data)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    reparam, plain = make(lam), make(1.0)
    a = _train(reparam, torch.optim.SGD(reparam.parameters(), lr=lr), 50, data)
    b = _train(plain, torch.optim.SGD(plain.parameters(), lr=lr * lam ** 2), 50, data)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    wrong = _train(make(1.0), torch.optim.SGD(make(1.0).parameters(), lr=lr * lam), 1, data)
    assert not torch.allclose(a, wrong)


def test_param_groups_alternative() -> None:
    model = torch.nn.ModuleDict({"encoder": torch.nn.Linear(4, 3), "crf": CRF(3)})
    groups = crf_param_groups(model, base_lr=1e-5, crf_lr_multiplier=100.0, extra={"weight_decay": 0.0})
    assert [g["lr"] for g in groups] == pytest.approx([1e-5, 1e-3])
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model["crf"].parameters()}
    assert len(groups[0]["params"]) == 2 and groups[0]["weight_decay"] == 0.0
    with pytest.raises(ConfigError):
        crf_param_groups(model, 1e-5, 0.0)


def test_errors() -> None:
    crf = CRF(3)
    with pytest.raises(ValueError, match="at least one valid"):
        crf.log_partition(torch.randn(2, 3, 3), torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="emissions"):
        crf.decode(torch.randn(2, 3, 4))
    with pytest.raises(ConfigError):
        CRF(3, lr_multiplier=0)
