"""Hooks: the points where regularisers, optimiser tricks and weight averaging plug into the Trainer.

A hook is an object of a :class:`Hook` subclass that overrides some of the methods below; the Trainer calls
them in the order of its ``hooks`` argument. Nothing is monkey-patched: hooks act through the arguments they
receive and the Trainer's public attributes (``trainer.model``, ``trainer.train_model``, ``trainer.optimizer``,
``trainer.scheduler``, ``trainer.config``, ``trainer.state``, ``trainer.device``) and methods
(``trainer.compute_loss(batch)``, ``trainer.backward(loss)``, ``trainer.train_batches(epoch)``).

Call order of ``Trainer.fit()``::

    seed; build optimizer and scheduler
    setup(trainer)                                   every hook, before any state is loaded
    [resume: model, optimizer, scheduler, trainer state, load_state_dict(state) of every hook]
    on_train_begin(trainer)                          e.g. ChildTuning-D's Fisher pass (trainer.resumed tells
                                                     whether state was loaded, so a pass can be skipped)
    [resume: RNG states restored here, so on_train_begin's randomness does not shift the run]
    for each epoch:
        on_epoch_begin(trainer, epoch)
        for each optimizer step:
            on_step_begin(trainer)
            for each micro-batch of the step (gradient accumulation):
                outputs = trainer.compute_loss(batch)            dict with "loss", forward under autocast
                loss = transform_loss(trainer, batch, loss, outputs)   chained over hooks (gradient penalty,
                                                                 multi-task weighting, FGM "adv_only")
                trainer.backward(loss)                           loss / micro-batches-in-step, .backward()
                after_backward(trainer, batch, loss)             e.g. FGM: perturb, compute_loss, backward,
                                                                 restore
            before_optimizer_step(trainer)   gradients complete (averaged over ranks), before clipping
            clip gradients; optimizer.step(); scheduler.step(); optimizer.zero_grad()
            on_step_end(trainer)             e.g. EMA update; trainer.state.global_step already counts it
            [log every log_every steps]
            [every eval_every steps: evaluate; every save_every steps: checkpoint]
        on_epoch_end(trainer, epoch)              (not when max_steps stops the run inside an epoch)
        [evaluate (unless done at this step), plot.png, checkpoint]
    on_train_end(trainer)
    [export last/, plot.png]

FGM in Su's form (update from the perturbed loss only) fits ``transform_loss``: take ``torch.autograd.grad`` of
the clean loss with respect to the embedding matrix, add δ, return ``trainer.compute_loss(batch)["loss"]``, and
remove δ in ``after_backward``. The common "clean + adversarial" form back-propagates the clean loss as usual
and does perturb / ``trainer.backward(trainer.compute_loss(batch)["loss"])`` / restore in ``after_backward``.
Optimizers that accumulate inside their momentum are stepped every micro-batch: use them with
``gradient_accumulation_steps=1`` (``max_steps`` and the schedule then count micro-steps).

Every evaluation runs ``evaluate(model)`` on ``model = eval_model(trainer, trainer.model)`` chained over the
hooks (EMA supplies its averaged copy), then calls ``on_evaluate(trainer, metrics)``; ``best/`` and ``last/`` are
exported from the same chained model. Checkpoints store ``state_dict()`` of every hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from kexue.errors import CheckpointError

if TYPE_CHECKING:
    from kexue.train.trainer import Trainer


class Hook:
    """Base class of Trainer hooks; every method is a no-op (identity for the ``transform_loss`` /
    ``eval_model`` chains). See the module docstring for when each is called."""

    def setup(self, trainer: Trainer) -> None:
        """Once per ``fit``, after the optimizer exists and before a checkpoint's state is loaded: build
        state that :meth:`load_state_dict` will fill (e.g. an averaged copy of the model)."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Once per ``fit``, after resume state is loaded and before the first step."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """At the start of epoch ``epoch`` (0-based), also when resuming in the middle of it."""

    def on_step_begin(self, trainer: Trainer) -> None:
        """Before the first micro-batch of an optimizer step."""

    def transform_loss(self, trainer: Trainer, batch: Any, loss: Tensor, outputs: Mapping[str, Tensor]) -> Tensor:
        """Return the loss to back-propagate for this micro-batch (scalar tensor).

        Args:
            batch: the micro-batch (already on the device).
            loss: the loss so far (``outputs["loss"]`` transformed by the earlier hooks).
            outputs: everything ``compute_loss`` returned (e.g. per-task losses for multi-task weighting).
        """
        return loss

    def after_backward(self, trainer: Trainer, batch: Any, loss: Tensor) -> None:
        """After ``trainer.backward(loss)`` of a micro-batch; extra ``trainer.compute_loss`` /
        ``trainer.backward`` calls here add to the step's gradients."""

    def before_optimizer_step(self, trainer: Trainer) -> None:
        """Gradients of the whole step are in ``.grad`` (averaged over ranks); runs before clipping."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After ``optimizer.step()``, ``scheduler.step()`` and ``zero_grad()``."""

    def eval_model(self, trainer: Trainer, model: nn.Module) -> nn.Module:
        """Return the module to evaluate and export instead of ``model`` (identity by default)."""
        return model

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After an evaluation, with its metrics."""

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """At the end of epoch ``epoch``, before its evaluation and checkpoint."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last step, before ``last/`` is exported."""

    def state_dict(self) -> dict[str, Any]:
        """State to store in training checkpoints (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class HookList:
    """Calls a sequence of hooks in order; chains ``transform_loss`` and ``eval_model``.

    Args:
        hooks: :class:`Hook` instances.

    Raises:
        TypeError: if an element is not a :class:`Hook`.
    """

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        for i, h in enumerate(hooks):
            if not isinstance(h, Hook):
                raise TypeError(f"hooks[{i}]: expected a kexue.train.Hook, got {type(h).__name__}")
        self.hooks = list(hooks)

    def call(self, name: str, *args: Any) -> None:
        """Call method ``name`` of every hook with ``args``."""
        for h in self.hooks:
            getattr(h, name)(*args)

    def transform_loss(self, trainer: Trainer, batch: Any, loss: Tensor, outputs: Mapping[str, Tensor]) -> Tensor:
        """Chain :meth:`Hook.transform_loss` over the hooks."""
        for h in self.hooks:
            loss = h.transform_loss(trainer, batch, loss, outputs)
        return loss

    def eval_model(self, trainer: Trainer, model: nn.Module) -> nn.Module:
        """Chain :meth:`Hook.eval_model` over the hooks."""
        for h in self.hooks:
            model = h.eval_model(trainer, model)
        return model

    def state_dict(self) -> list[dict[str, Any]]:
        """``[{"type": class name, "state": hook.state_dict()}, ...]`` in hook order."""
        return [{"type": type(h).__name__, "state": h.state_dict()} for h in self.hooks]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        """Restore the hooks from :meth:`state_dict`'s output.

        Hooks without state (an empty ``state_dict()``) may be added or removed between runs; the hooks
        with state must match the checkpoint's in number, order and type.

        Raises:
            CheckpointError: if the stateful hooks differ from the checkpoint's.
        """
        saved = [s for s in states if s["state"]]
        have = [h for h in self.hooks if h.state_dict()]
        saved_types = [s["type"] for s in saved]
        have_types = [type(h).__name__ for h in have]
        if saved_types != have_types:
            raise CheckpointError(f"checkpoint holds state of hooks {saved_types}, this Trainer's hooks with "
                                  f"state are {have_types}")
        for h, s in zip(have, saved):
            h.load_state_dict(s["state"])
