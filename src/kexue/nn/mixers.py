"""Token-mixing blocks of the MLP-style models surveyed in "也来盘点一些最近的非Transformer工作",
https://kexue.fm/archives/8431: FNet's Fourier mixing and gMLP's spatial gating unit, and their drop-in
wrappers for the attention slot of :class:`kexue.models.Transformer` (``TransformerConfig.token_mixing``).

Writing attention as ``O = A V``: FNet takes ``A`` = the DFT matrix over positions (and hidden), keeps the real
part, and has no parameters (``O(n log n)``); gMLP splits ``X = [X1, X2]`` along hidden and returns
``X1 ⊙ (W X2 + b)`` with a learned ``n × n`` token-mixing ``W``. Su's point: these are special cases of
Synthesizer, do not handle variable length gracefully, and the survey's CNN study shows pre-training gains are
separable from architecture gains — try them with the same pretraining recipe to see.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kexue.errors import ConfigError


def _keep_mask(bias: Tensor | None, batch: int, length: int) -> Tensor | None:
    """``[B, L, 1]`` 1/0 key-padding mask from the backbone's additive bias (``None``: nothing padded)."""
    if bias is None:
        return None
    b = bias.expand(batch, 1, bias.shape[2], length)
    return (b[:, 0, 0, :] == 0).unsqueeze(-1)


class FNetMixing(nn.Module):
    """FNet's parameter-free token mixing ``Re(FFT2(x))`` over (sequence, hidden): ``[B, L, H] -> [B, L, H]``.

    The FFT runs in float32 at least (half precision is upcast) and the output is cast back. Source: FNet
    (Lee-Thorp et al., arXiv 2105.03824) as summarised in https://kexue.fm/archives/8431.
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[..., L, H]`` -> ``Re(torch.fft.fft2(x, dim=(-2, -1)))``, same shape and dtype."""
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return torch.fft.fft2(work, dim=(-2, -1)).real.to(x.dtype)


class SpatialGatingUnit(nn.Module):
    """gMLP's spatial gating unit: ``[X1, X2] = split(X)``, ``O = X1 ⊙ (W·norm(X2) + b)``:
    ``[B, L, 2d] -> [B, L, d]`` with ``W`` ``[seq_len, seq_len]`` mixing positions and ``b`` ``[seq_len]``.

    Initialised as in the paper, ``W ≈ 0`` (``U(−eps, eps)``) and ``b = 1``, so the unit starts close to returning
    ``X1``. Sequences shorter than ``seq_len`` use ``W[:L, :L]``; padded positions (``keep`` = 0) are zeroed in
    ``X2`` before mixing so they do not leak into real tokens.

    Args:
        seq_len: the largest sequence length ``n``.
        dim: ``d``, the width of ``X1`` (the input has ``2d`` channels); with ``norm=True`` a LayerNorm over
            ``X2`` (the paper's), else none.
        init_eps: half-width of ``W``'s uniform initialisation.
    Raises:
        ConfigError: non-positive sizes; (forward) an odd channel count or ``L > seq_len``.

    Source: gMLP (Liu et al., arXiv 2105.08050) as summarised in https://kexue.fm/archives/8431.
    """

    def __init__(self, seq_len: int, dim: int | None = None, norm: bool = True, init_eps: float = 1e-3) -> None:
        super().__init__()
        if seq_len < 1 or (dim is not None and dim < 1):
            raise ConfigError(f"SpatialGatingUnit: seq_len and dim must be positive, got {seq_len}, {dim}")
        self.seq_len = seq_len
        self.weight = nn.Parameter(torch.empty(seq_len, seq_len).uniform_(-init_eps, init_eps))
        self.bias = nn.Parameter(torch.ones(seq_len))
        self.norm = nn.LayerNorm(dim) if (norm and dim is not None) else None

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """``x`` ``[B, L, 2d]``, optional ``keep`` ``[B, L, 1]`` (1 = real token) -> ``[B, L, d]``."""
        length, channels = x.shape[-2], x.shape[-1]
        if channels % 2:
            raise ConfigError(f"SpatialGatingUnit: expected an even channel count, got {channels}")
        if length > self.seq_len:
            raise ConfigError(f"SpatialGatingUnit: sequence length {length} exceeds seq_len={self.seq_len} "
                              "(the token-mixing matrix is n x n; raise token_mixing_seq_len)")
        x1, x2 = x.chunk(2, dim=-1)
        if self.norm is not None:
            x2 = self.norm(x2)
        if keep is not None:
            x2 = x2 * keep.to(x2.dtype)
        w = self.weight[:length, :length].to(x2.dtype)
        mixed = torch.matmul(w, x2) + self.bias[:length, None].to(x2.dtype)
        return x1 * mixed


class FNetTokenMixer(nn.Module):
    """:class:`FNetMixing` in the attention slot of a Transformer block (same call signature as
    :class:`kexue.nn.attention.MultiHeadAttention`; returns ``(mixed [+ residual], None)``).

    Padded positions are zeroed before the FFT (the transform still runs over the padded length: FNet has no
    notion of variable length, one of Su's objections).
    """

    def __init__(self) -> None:
        super().__init__()
        self.mixing = FNetMixing()

    def forward(self, hidden_states: Tensor, bias: Tensor | None = None, rope=None, scale_factor=None,
                prev_scores=None, need_scores: bool = False,
                residual: Tensor | None = None) -> tuple[Tensor, None]:
        """``[B, L, H]`` -> ``([B, L, H], None)``; ``rope``, ``scale_factor``, ``prev_scores`` are ignored."""
        b, length, _ = hidden_states.shape
        keep = _keep_mask(bias, b, length)
        x = hidden_states if keep is None else hidden_states * keep.to(hidden_states.dtype)
        out = self.mixing(x)
        return (out if residual is None else out + residual), None


class GatedTokenMixer(nn.Module):
    """gMLP's token mixing in the attention slot: ``Linear(H, 2H) -> GELU -> SpatialGatingUnit -> Linear(H, H)``
    (same call signature as :class:`kexue.nn.attention.MultiHeadAttention`; returns ``(out [+ residual], None)``).

    Module names: ``proj_in``, ``sgu``, ``output``. Args: hidden size ``H``, the largest sequence length, bias.
    """

    def __init__(self, hidden_size: int, seq_len: int, bias: bool = True) -> None:
        super().__init__()
        self.proj_in = nn.Linear(hidden_size, 2 * hidden_size, bias=bias)
        self.act = nn.GELU()
        self.sgu = SpatialGatingUnit(seq_len, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size, bias=bias)

    def forward(self, hidden_states: Tensor, bias: Tensor | None = None, rope=None, scale_factor=None,
                prev_scores=None, need_scores: bool = False,
                residual: Tensor | None = None) -> tuple[Tensor, None]:
        """``[B, L, H]`` -> ``([B, L, H], None)``."""
        b, length, _ = hidden_states.shape
        keep = _keep_mask(bias, b, length)
        out = self.output(self.sgu(self.act(self.proj_in(hidden_states)), keep))
        return (out if residual is None else out + residual), None

