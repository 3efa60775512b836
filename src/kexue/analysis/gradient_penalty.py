"""The inequality between input-gradient and parameter-gradient penalties of a plain MLP.

Source: "输入梯度惩罚与参数梯度惩罚的一个不等式", https://kexue.fm/archives/8796 (on "The Geometric Occam's Razor
Implicit in Deep Learning", arXiv 2111.15090).

MLP ``z^{(t+1)} = W^{(t)} h^{(t)} + b^{(t)}``, ``h^{(t+1)} = g^{(t)}(z^{(t+1)})``, ``h^{(1)} = x``, elementwise
activations, ``f`` a scalar function of the output. With ``δ_t = ∂f/∂z^{(t+1)}``: ``∇_{W^{(t)}} f = δ_t h^{(t)ᵀ}``,
``∇_{b^{(t)}} f = δ_t`` and ``∇_x f = J_tᵀ W^{(t)ᵀ} δ_t`` (``J_t = ∂h^{(t)}/∂x``), so
``‖∇_x f‖ ≤ ‖J_t‖₂ ‖W^{(t)}‖₂ ‖δ_t‖`` and, per layer,

    ‖∇_x f‖² ‖h^{(t)}‖² / (‖W^{(t)}‖₂² ‖J_t‖₂²) ≤ ‖∇_{W^{(t)}} f‖²      (W-part)
    ‖∇_x f‖²            / (‖W^{(t)}‖₂² ‖J_t‖₂²) ≤ ‖∇_{b^{(t)}} f‖²      (b-part)

Summed over layers: ``‖∇_x f‖² Σ_t (1 + ‖h^{(t)}‖²)/(‖W^{(t)}‖₂² ‖J_t‖₂²) ≤ ‖∇_θ f‖²``. An (implicit) parameter
gradient penalty therefore also penalises the input gradient; Su argues the bracket stays roughly stable in
non-collapsing training, so the two penalties are roughly proportional. The penalties themselves, for use in a
loss, are :func:`kexue.regularizers.gradient_penalty` (input) and
:func:`kexue.regularizers.parameter_gradient_penalty`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from kexue.errors import ConfigError

#: Modules accepted as the elementwise activations ``g`` between Linear layers.
ELEMENTWISE = (nn.Tanh, nn.GELU, nn.ReLU, nn.Sigmoid, nn.SiLU, nn.Softplus, nn.LeakyReLU, nn.ELU, nn.Identity,
               nn.Mish, nn.Hardtanh)
NORMS = ("spectral", "frobenius")


@dataclass
class LayerTerms:
    """One layer's two inequalities (all float64 Python numbers).

    Attributes:
        w_lhs, w_rhs: ``‖∇_x f‖² ‖h‖² / (‖W‖² ‖J‖²)`` and ``‖∇_W f‖²``.
        b_lhs, b_rhs: ``‖∇_x f‖² / (‖W‖² ‖J‖²)`` and ``‖∇_b f‖²`` (both 0 for a layer without bias).
        w_norm, j_norm: the matrix norms ``‖W‖`` and ``‖J_t‖`` used; h_norm: ``‖h^{(t)}‖``.
    """

    w_lhs: float
    w_rhs: float
    b_lhs: float
    b_rhs: float
    w_norm: float
    j_norm: float
    h_norm: float


@dataclass
class InequalityResult:
    """``lhs ≤ rhs`` of the whole inequality, ``ratio = lhs / rhs``, ``‖∇_x f‖²``, and ``per_layer`` terms."""

    lhs: float
    rhs: float
    ratio: float
    input_grad_sq: float
    per_layer: list[LayerTerms] = field(default_factory=list)


def _layers(mlp: nn.Sequential) -> list[tuple[nn.Linear, list[nn.Module]]]:
    if not isinstance(mlp, nn.Sequential):
        raise ConfigError(f"gradient_penalty_inequality: expected an nn.Sequential MLP, got {type(mlp).__name__}")
    out: list[tuple[nn.Linear, list[nn.Module]]] = []
    for module in mlp:
        if isinstance(module, nn.Linear):
            out.append((module, []))
        elif isinstance(module, ELEMENTWISE):
            if not out:
                raise ConfigError("gradient_penalty_inequality: the MLP must start with an nn.Linear")
            out[-1][1].append(module)
        else:
            raise ConfigError(f"gradient_penalty_inequality: {type(module).__name__} is neither nn.Linear nor an "
                              "elementwise activation (the inequality holds for plain MLPs only: no norms, "
                              "residuals or weight sharing)")
    if not out:
        raise ConfigError("gradient_penalty_inequality: the MLP has no nn.Linear layer")
    return out


def _matrix_norm(m: Tensor, norm: str) -> float:
    return float(torch.linalg.matrix_norm(m, ord=2 if norm == "spectral" else "fro"))


def gradient_penalty_inequality(mlp: nn.Sequential, x: Tensor, f: Callable[[Tensor], Tensor],
                                norm: str = "spectral") -> InequalityResult:
    """Both sides of the input/parameter gradient-penalty inequality at one example, in float64.

    Args:
        mlp: ``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations (a float64 copy is used; the
            module itself is not modified).
        x: one input ``[d]``.
        f: scalar function of the MLP output (e.g. ``lambda y: y.sum()`` or a loss against a fixed target).
        norm: ``"spectral"`` (the article's, tightest) or ``"frobenius"`` (looser, also valid).
    Returns:
        :class:`InequalityResult` with ``lhs ≤ rhs`` (``ratio ≤ 1`` up to rounding) and the per-layer W- and
        b-parts, each of which satisfies its own inequality.
    Raises:
        ConfigError: not a plain MLP, ``x`` not 1-D, ``f`` not scalar, or an unknown ``norm``.
    """
    if norm not in NORMS:
        raise ConfigError(f"--norm: expected one of {NORMS}, got {norm!r}")
    model = copy.deepcopy(mlp).double()
    layers = _layers(model)
    if x.dim() != 1:
        raise ConfigError(f"gradient_penalty_inequality: x must be one example [d], got shape {tuple(x.shape)}")
    x = x.detach().double().requires_grad_(True)

    def upto(t: int) -> Callable[[Tensor], Tensor]:  # x -> h^{(t+1)} (h after layer t's activations)
        def run(inp: Tensor) -> Tensor:
            h = inp
            for linear, acts in layers[:t]:
                h = linear(h)
                for act in acts:
                    h = act(h)
            return h
        return run

    out = upto(len(layers))(x)
    value = f(out)
    if value.numel() != 1:
        raise ConfigError(f"gradient_penalty_inequality: f must return a scalar, got shape {tuple(value.shape)}")
    params = [p for linear, _ in layers for p in ([linear.weight] + ([linear.bias] if linear.bias is not None
                                                                      else []))]
    grads = torch.autograd.grad(value.reshape(()), [x] + params)
    grad_x_sq = float(grads[0].pow(2).sum())
    param_grads = iter(grads[1:])
    per_layer: list[LayerTerms] = []
    lhs = 0.0
    rhs = 0.0
    for t, (linear, _) in enumerate(layers):
        gw = next(param_grads)
        gb = next(param_grads) if linear.bias is not None else None
        with torch.no_grad():
            h = upto(t)(x.detach())
        if t == 0:
            j_norm = 1.0 if norm == "spectral" else float(x.numel()) ** 0.5
        else:
            jac = torch.autograd.functional.jacobian(upto(t), x.detach())
            j_norm = _matrix_norm(jac, norm)
        w_norm = _matrix_norm(linear.weight.detach(), norm)
        h_sq = float(h.pow(2).sum())
        denom = (w_norm * j_norm) ** 2
        scale = grad_x_sq / denom if grad_x_sq > 0 else 0.0
        terms = LayerTerms(w_lhs=scale * h_sq, w_rhs=float(gw.pow(2).sum()),
                           b_lhs=scale if gb is not None else 0.0,
                           b_rhs=float(gb.pow(2).sum()) if gb is not None else 0.0,
                           w_norm=w_norm, j_norm=j_norm, h_norm=h_sq ** 0.5)
        per_layer.append(terms)
        lhs += terms.w_lhs + terms.b_lhs
        rhs += terms.w_rhs + terms.b_rhs
    ratio = lhs / rhs if rhs > 0 else (0.0 if lhs == 0 else float("inf"))
    return InequalityResult(lhs=lhs, rhs=rhs, ratio=ratio, input_grad_sq=grad_x_sq, per_layer=per_layer)
