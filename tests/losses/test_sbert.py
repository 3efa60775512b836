"""Sentence-BERT baselines: softmax over [u; v; |u-v|] and cosine MSE (arXiv 1908.10084)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from kexue.losses.sbert import CosineMSELoss, SoftmaxLoss, cosine_mse_loss


class _Identity(torch.nn.Module):
    """Stands in for a SentenceTransformer: the features already are the sentence embeddings."""

    device = torch.device("cpu")

    def forward(self, features):
        return {"sentence_embedding": features["x"]}


def _st_losses():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers.sentence_transformer import losses
    return losses


def test_softmax_hand_value():
    loss = SoftmaxLoss(embedding_dim=1, num_labels=2)
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
        loss.classifier.bias.zero_()
    u, v = torch.tensor([[2.0]]), torch.tensor([[-1.0]])
    # features [2, -1, 3] -> logits [2, 3]; CE for class 0 = log(e^2 + e^3) - 2
    assert loss.features(u, v).tolist() == [[2.0, -1.0, 3.0]]
    assert loss(u, v, torch.tensor([0])).item() == pytest.approx(math.log(math.exp(2) + math.exp(3)) - 2, rel=1e-6)


def test_softmax_parity_with_sentence_transformers():
    reference = _st_losses().SoftmaxLoss(_Identity(), 8, 3)
    ours = SoftmaxLoss(8, 3)
    ours.classifier.load_state_dict(reference.classifier.state_dict())
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    labels = torch.tensor([0, 2, 1, 1, 0])
    expected = reference([{"x": u}, {"x": v}], labels)
    assert torch.allclose(ours(u, v, labels), expected, atol=1e-6)


def test_softmax_feature_selection_and_errors():
    loss = SoftmaxLoss(4, 2, concat_u=False, concat_v=False)
    assert loss.classifier.in_features == 4
    with pytest.raises(ValueError, match="num_labels"):
        SoftmaxLoss(4, 1)
    with pytest.raises(ValueError, match="at least one"):
        SoftmaxLoss(4, 2, concat_u=False, concat_v=False, concat_abs_diff=False)
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\)"):
        SoftmaxLoss(4, 2)(torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0, 2]))


def test_softmax_trains_a_separable_toy_problem():
    torch.manual_seed(0)
    u = torch.randn(64, 4)
    labels = (u[:, 0] > 0).long()
    v = u.clone()
    v[:, 0] = -v[:, 0].abs()
    loss = SoftmaxLoss(4, 2)
    opt = torch.optim.Adam(loss.parameters(), lr=0.1)
    first = loss(u, v, labels).item()
    for _ in range(100):
        opt.zero_grad()
        value = loss(u, v, labels)
        value.backward()
        opt.step()
    assert value.item() < 0.2 * first


def test_cosine_mse_hand_value_and_scaling():
    cos = torch.tensor([1.0, 0.0])
    scores = torch.tensor([5.0, 2.5])
    # targets 1.0 and 0.5 -> ((0)^2 + (0.5)^2) / 2
    assert cosine_mse_loss(cos, scores, score_range=(0, 5)).item() == pytest.approx(0.125)
    assert cosine_mse_loss(cos, torch.tensor([1.0, 0.0])).item() == 0.0
    with pytest.raises(ValueError, match="high > low"):
        cosine_mse_loss(cos, scores, score_range=(5, 0))
    with pytest.raises(ValueError, match="cos_sim"):
        cosine_mse_loss(cos, torch.zeros(3))


def test_cosine_mse_parity_with_sentence_transformers():
    reference = _st_losses().CosineSimilarityLoss(_Identity())
    g = torch.Generator().manual_seed(1)
    u, v = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    scores = torch.rand(6, generator=g) * 5
    expected = reference([{"x": u}, {"x": v}], scores / 5)
    assert torch.allclose(CosineMSELoss(score_range=(0.0, 5.0))(u, v, scores), expected, atol=1e-6)
