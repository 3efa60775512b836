"""Exponential moving average (EMA) of the weights as a Trainer hook, through ``torch.optim.swa_utils``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from kexue.errors import ConfigError
from kexue.train.hooks import Hook

if TYPE_CHECKING:
    from kexue.train.trainer import Trainer


class EMAHook(Hook):
    """Keep an EMA copy of the model's weights; the Trainer evaluates and exports the copy.

    After every optimizer step ``θ_ema ← decay · θ_ema + (1 − decay) · θ``; the first update copies θ
    (``AveragedModel`` semantics). Buffers are not averaged: they are copied from the live model at every
    update (``use_buffers=False``), so integer buffers such as ``position_ids`` stay exact. Frozen parameters
    are averaged too (they do not change, so they stay equal).

    Source: Polyak & Juditsky, "Acceleration of stochastic approximation by averaging" (1992), in its
    exponential form; kexue's training-techniques issue asks for it through
    ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``, which is what this hook uses.

    Args:
        decay: EMA decay in [0, 1); 0.999 is common for fine-tuning runs of a few thousand steps.

    Raises:
        ConfigError: if ``decay`` is outside [0, 1).
    """

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"ema decay: expected a value in [0, 1), got {decay!r}")
        self.decay = decay
        self.averaged: AveragedModel | None = None

    def setup(self, trainer: Trainer) -> None:
        """Build the averaged copy of ``trainer.model`` (on the model's device)."""
        self.averaged = AveragedModel(trainer.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay),
                                      use_buffers=False)

    def on_step_end(self, trainer: Trainer) -> None:
        """Fold the just-updated weights into the average."""
        self._require().update_parameters(trainer.model)

    def eval_model(self, trainer: Trainer, model: nn.Module) -> nn.Module:
        """The averaged module (the live one before the first update, when the copy equals the initial
        weights)."""
        averaged = self._require()
        return averaged.module if int(averaged.n_averaged) > 0 else model

    def state_dict(self) -> dict[str, Any]:
        """The averaged model's state (weights and ``n_averaged``)."""
        return {"decay": self.decay, "averaged": self._require().state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the averaged weights; the stored decay must equal this hook's."""
        if state["decay"] != self.decay:
            raise ConfigError(f"ema decay: checkpoint used {state['decay']}, this run asks for {self.decay}")
        self._require().load_state_dict(state["averaged"])

    def _require(self) -> AveragedModel:
        if self.averaged is None:
            raise RuntimeError("EMAHook is used before Trainer.fit() called its setup()")
        return self.averaged
