"""Helpers of the oracle round-trip tests: gold labels -> +1/-1 score tensors -> library decoders.

Score tensors are int8 views into one reusable buffer (only the labelled cells are written and reset), so a
pass over thousands of examples with ~50 predicate heads stays fast.
"""

from __future__ import annotations

import torch


class ScoreBuffer:
    """A reusable ``[heads, L_max, L_max]`` int8 buffer of -1 that turns sparse labels into score views."""

    def __init__(self, heads: int, max_length: int) -> None:
        self.buf = torch.full((1, heads, max_length, max_length), -1, dtype=torch.int8)
        self.cells: tuple[torch.Tensor, ...] | None = None

    def scores(self, labels: torch.Tensor, length: int) -> torch.Tensor:
        """Score view ``[1, heads, L, L]``: +1 at the flat indices of ``labels`` ``[1, heads, K]`` (0 = padding)."""
        self.reset()
        view = self.buf[:, :, :length, :length]
        head, slot = torch.nonzero(labels[0] > 0, as_tuple=True)
        flat = labels[0, head, slot]
        self.cells = (torch.zeros_like(head), head, flat // length, flat % length)
        view[self.cells] = 1
        return view

    def reset(self) -> None:
        """Set the cells written by the last :meth:`scores` back to -1."""
        if self.cells is not None:  # (row, col) < L index the buffer exactly as they index the view
            self.buf[self.cells] = -1
            self.cells = None


def special_ends(length: int) -> torch.Tensor:
    """``[1, L]`` special-tokens mask with ``[CLS]`` (first) and ``[SEP]`` (last) set."""
    mask = torch.zeros(1, length, dtype=torch.bool)
    mask[0, 0] = mask[0, -1] = True
    return mask
