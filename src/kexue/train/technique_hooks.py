"""Trainer switches for the training techniques: thin hooks over :mod:`kexue.regularizers` / :mod:`kexue.optim`
and an optimizer-factory builder.

* :class:`FGMHook` — FGM on the word-embedding matrix, Su's "perturbed loss only" recipe or the common
  "clean + perturbed" one (https://kexue.fm/archives/7234);
* :class:`GradientPenaltyHook` — input-gradient penalty on the embedding outputs (true double backward), or the
  parameter-gradient penalty (https://kexue.fm/archives/7234, https://kexue.fm/archives/8796);
* :class:`ChildTuningDHook` — ChildTuning-D's Fisher pass before the first step, installing the mask in the
  :class:`~kexue.optim.ChildTuningAdamW` optimizer (https://kexue.fm/archives/8764);
* :func:`build_optimizer_factory` — ``"adamw"``, ``"accum-adamw"``, ``"accum-sgdm"`` (gradient accumulation inside
  the momentum, https://kexue.fm/archives/8634), ``"child-tuning-f"``, ``"child-tuning-d"``, with learning-rate
  multipliers by parameter-name pattern (https://kexue.fm/archives/7196).

Every hook acts on the micro-batch it is given, so all of them compose with the Trainer's classic gradient
accumulation. Resume: FGM and the penalties keep no state between steps; ChildTuning-D's mask travels in the
optimizer's state dict and the hook's state records that the Fisher pass was done, so a resumed run skips it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from kexue.errors import ConfigError
from kexue.optim import AccumAdamW, AccumSGDM, ChildTuningAdamW, default_child_tuning_filter, name_matches
from kexue.optim.child_tuning import compute_fisher_mask
from kexue.regularizers import (FGM, capture_embedding_outputs, embedding_gradient_penalty,
                                parameter_gradient_penalty, resolve_embedding)
from kexue.train.config import TrainerConfig
from kexue.train.hooks import Hook

if TYPE_CHECKING:
    from kexue.train.trainer import Trainer

__all__ = ["OPTIMIZERS", "FGMHook", "GradientPenaltyHook", "ChildTuningDHook", "build_optimizer_factory",
           "parameter_groups"]

OPTIMIZERS = ("adamw", "accum-adamw", "accum-sgdm", "child-tuning-f", "child-tuning-d")
"""Names accepted by :func:`build_optimizer_factory` (and ``kexue train classify --optimizer``)."""

NamedParams = Sequence[tuple[str, nn.Parameter]]


class FGMHook(Hook):
    """FGM adversarial training as a Trainer hook (word-embedding matrix ``E``, :class:`kexue.regularizers.FGM`).

    Per micro-batch, with ``L`` the clean loss the Trainer computed: ``G = ∂L/∂E`` (``torch.autograd.grad``, so
    ``.grad`` is untouched), ``δ = ε·G/(‖G‖_F + 1e-8)`` (or ``ε·sign(G)``), ``E ← E + δ``, a second forward gives
    the perturbed loss ``L_adv``, and E is restored bit for bit after its backward.

    * ``loss_mode="adv_only"`` (Su's Keras code): :meth:`transform_loss` returns ``L_adv``, so the step's gradient
      is that of the perturbed loss only and the logged ``loss`` is ``L_adv``;
    * ``loss_mode="clean_plus_adv"`` (common PyTorch recipe): the Trainer back-propagates ``L``, then
      :meth:`after_backward` adds the gradient of ``L_adv``.

    Cost: one extra forward and backward per micro-batch. Works with any model exposing ``get_input_embeddings()``
    (kexue's Transformer, transformers and peft models) whose embedding matrix is trainable.

    Args:
        epsilon: ε, the Frobenius norm of δ (``norm="l2"``) or its per-entry size (``"sign"``). Default 0.1 (the
            sst2 sweep in docs/RESULTS.md; the post's 1 collapses short-input batches, see :class:`kexue.regularizers.FGM`).
        loss_mode: ``"adv_only"`` | ``"clean_plus_adv"``.
        norm: ``"l2"`` | ``"sign"``.

    Raises:
        ConfigError: invalid options (from :class:`FGM`); at ``setup`` a model without a trainable word-embedding
            matrix (e.g. LoRA or Ladder Side-Tuning, whose backbone is frozen — use the gradient penalty there).

    Source: https://kexue.fm/archives/7234; Miyato et al., arXiv 1605.07725.
    """

    def __init__(self, epsilon: float = 0.1, loss_mode: str = "adv_only", norm: str = "l2") -> None:
        if loss_mode not in ("adv_only", "clean_plus_adv"):
            raise ConfigError(f"fgm loss_mode: expected 'adv_only' or 'clean_plus_adv', got {loss_mode!r}")
        self.epsilon, self.loss_mode, self.norm = float(epsilon), loss_mode, norm
        FGM(nn.Embedding(1, 1), epsilon, norm, loss_mode)  # validate the options now, not at fit()
        self.fgm: FGM | None = None
        self._grad: Tensor | None = None

    def setup(self, trainer: Trainer) -> None:
        """Bind an :class:`FGM` to ``trainer.model``'s word embeddings."""
        self.fgm = FGM(trainer.model, self.epsilon, self.norm, self.loss_mode)
        if not self.fgm.weight.requires_grad:
            raise ConfigError("--adversarial fgm: the word-embedding matrix is frozen (LoRA / Ladder Side-Tuning); "
                              "FGM perturbs it through its gradient. Use --gradient-penalty instead")

    def transform_loss(self, trainer: Trainer, batch: Any, loss: Tensor, outputs: Mapping[str, Tensor]) -> Tensor:
        """Compute δ from this micro-batch's loss; in ``adv_only`` mode return the perturbed loss."""
        fgm = self._require()
        (grad,) = torch.autograd.grad(loss, fgm.weight, retain_graph=self.loss_mode == "clean_plus_adv")
        if self.loss_mode == "clean_plus_adv":
            self._grad = grad
            return loss
        fgm.attack(grad)
        try:
            return trainer.compute_loss(batch)["loss"]
        except BaseException:
            fgm.restore()
            raise

    def after_backward(self, trainer: Trainer, batch: Any, loss: Tensor) -> None:
        """Restore E (``adv_only``), or add the perturbed loss's gradient and restore (``clean_plus_adv``)."""
        fgm = self._require()
        if self.loss_mode == "adv_only":
            fgm.restore()
            return
        grad, self._grad = self._grad, None
        fgm.attack(grad)
        try:
            trainer.backward(trainer.compute_loss(batch)["loss"])
        finally:
            fgm.restore()

    def _require(self) -> FGM:
        if self.fgm is None:
            raise RuntimeError("FGMHook is used before Trainer.fit() called its setup()")
        return self.fgm


class GradientPenaltyHook(Hook):
    """Add a gradient penalty to every micro-batch's loss (double back-propagation).

    * ``kind="input"`` (Su's alternative to FGM): ``L + ½·ε·Σ_positions ‖∂L/∂e_pos‖²`` over the word-embedding
      lookup outputs ``e`` ``[batch, seq_len, hidden]`` recorded during the Trainer's forward
      (:func:`kexue.regularizers.embedding_gradient_penalty`); works with a frozen embedding too (LoRA);
    * ``kind="parameter"``: ``L + ε·Σ_θ ‖∂L/∂θ‖²`` over the trainable parameters
      (:func:`kexue.regularizers.parameter_gradient_penalty`).

    Cost: about one extra backward through the network per micro-batch (plus its own backward).

    Args:
        epsilon: ε ≥ 0 (the post's example: 1 for the input penalty).
        kind: ``"input"`` | ``"parameter"``.

    Raises: ConfigError for a negative ε or an unknown kind; at ``setup`` a model without ``get_input_embeddings``.
    Source: https://kexue.fm/archives/7234 (input), https://kexue.fm/archives/8796 (parameter).
    """

    def __init__(self, epsilon: float = 1.0, kind: str = "input") -> None:
        if not epsilon >= 0:
            raise ConfigError(f"--gradient-penalty: expected epsilon >= 0, got {epsilon!r}")
        if kind not in ("input", "parameter"):
            raise ConfigError(f"gradient penalty kind: expected 'input' or 'parameter', got {kind!r}")
        self.epsilon, self.kind = float(epsilon), kind
        self._stack: ExitStack | None = None
        self._captured = None

    def setup(self, trainer: Trainer) -> None:
        """Check that the model's word embeddings can be found (input penalty)."""
        if self.kind == "input":
            resolve_embedding(trainer.model)

    def on_step_begin(self, trainer: Trainer) -> None:
        """Start recording the embedding outputs of this step's forward passes (input penalty)."""
        if self.kind == "input":
            self._close()
            self._stack = ExitStack()
            self._captured = self._stack.enter_context(capture_embedding_outputs(trainer.model))

    def transform_loss(self, trainer: Trainer, batch: Any, loss: Tensor, outputs: Mapping[str, Tensor]) -> Tensor:
        """``loss + penalty`` for this micro-batch."""
        if self.kind == "parameter":
            params = [p for p in trainer.model.parameters() if p.requires_grad]
            return loss + parameter_gradient_penalty(loss, params, weight=self.epsilon)
        if self._captured is None or not self._captured.outputs:
            raise RuntimeError("GradientPenaltyHook: no embedding output was recorded for this micro-batch")
        embeds = list(self._captured.outputs)
        self._captured.outputs.clear()
        return loss + embedding_gradient_penalty(loss, embeds, epsilon=self.epsilon)

    def after_backward(self, trainer: Trainer, batch: Any, loss: Tensor) -> None:
        """Drop outputs recorded by later forwards of this micro-batch (e.g. FGM's perturbed pass)."""
        if self._captured is not None:
            self._captured.outputs.clear()

    def before_optimizer_step(self, trainer: Trainer) -> None:
        """Stop recording (evaluation forwards are not recorded)."""
        self._close()

    def on_train_end(self, trainer: Trainer) -> None:
        """Remove the forward hook if a step was interrupted."""
        self._close()

    def _close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._captured = None, None


class ChildTuningDHook(Hook):
    """ChildTuning-D: before the first step, score parameters by diagonal Fisher information on the training
    data and install the top-``reserve_p`` mask in the Trainer's :class:`~kexue.optim.ChildTuningAdamW`
    (built with ``mode="D"``, e.g. by ``build_optimizer_factory("child-tuning-d")``).

    The pass follows the official code (:func:`kexue.optim.compute_fisher_mask`): mini-batch gradients of the
    Trainer's loss (dropout on, as in training), each tensor clipped to ``clip_grad_norm``, squared and averaged;
    only parameters selected by ``param_filter`` (names containing ``"layer"``) are masked. The batches are the
    first ``max_batches`` micro-batches of epoch 0 in training order (all of them by default).

    Resume: the mask is part of the optimizer's state dict; this hook's state records that the pass ran, so a
    resumed run does not repeat it.

    Args:
        reserve_p: kept fraction p in (0, 1] (must equal the optimizer's; official run.sh: 0.3).
        param_filter: ``name -> bool`` choosing the maskable parameters.
        clip_grad_norm: per-tensor clipping norm of each batch gradient (None: none).
        max_batches: cap on the Fisher pass's batches (None: one full epoch).

    Raises: ConfigError at ``on_train_begin`` if the optimizer is not a D-mode ChildTuningAdamW with the same p.
    Source: https://kexue.fm/archives/8764; Xu et al., arXiv 2109.05687; alibaba/AliceMind ``ChildTuning/``.
    """

    def __init__(self, reserve_p: float = 0.3, param_filter: Callable[[str], bool] | None = default_child_tuning_filter,
                 clip_grad_norm: float | None = 1.0, max_batches: int | None = None) -> None:
        if not 0.0 < reserve_p <= 1.0:
            raise ConfigError(f"--reserve-p: expected a value in (0, 1], got {reserve_p!r}")
        if max_batches is not None and max_batches < 1:
            raise ConfigError(f"fisher max_batches: expected an integer >= 1, got {max_batches!r}")
        self.reserve_p, self.param_filter = float(reserve_p), param_filter
        self.clip_grad_norm, self.max_batches = clip_grad_norm, max_batches
        self.done = False
        self.density: float | None = None
        self.fisher_batches = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        """Run the Fisher pass and set the optimizer's mask (skipped when resuming after the pass)."""
        opt = trainer.optimizer
        if not isinstance(opt, ChildTuningAdamW) or opt.mode != "D":
            raise ConfigError("--child-tuning D: the optimizer must be ChildTuningAdamW(mode='D') "
                              f"(build_optimizer_factory('child-tuning-d')), got {type(opt).__name__}")
        if opt.reserve_p != self.reserve_p:
            raise ConfigError(f"--reserve-p: the hook uses {self.reserve_p}, the optimizer {opt.reserve_p}")
        if trainer.resumed and self.done:
            return

        def batches():
            for i, (_, batch) in enumerate(trainer.train_batches(0)):
                if self.max_batches is not None and i >= self.max_batches:
                    return
                self.fisher_batches = i + 1
                yield batch

        masks = compute_fisher_mask(trainer.model, batches(), lambda _m, b: trainer.compute_loss(b)["loss"],
                                    reserve_p=self.reserve_p, param_filter=self.param_filter,
                                    clip_grad_norm=self.clip_grad_norm)
        opt.set_gradient_mask(masks, model=trainer.model)
        kept = sum(int(m.sum()) for m in masks.values())
        self.density = kept / max(1, sum(m.numel() for m in masks.values()))
        self.done = True

    def state_dict(self) -> dict[str, Any]:
        """``{"done", "reserve_p", "density", "fisher_batches"}`` (the mask itself is in the optimizer state)."""
        return {"done": self.done, "reserve_p": self.reserve_p, "density": self.density,
                "fisher_batches": self.fisher_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the stored p must equal this hook's."""
        if state["reserve_p"] != self.reserve_p:
            raise ConfigError(f"--reserve-p: checkpoint used {state['reserve_p']}, this run asks for {self.reserve_p}")
        self.done, self.density = bool(state["done"]), state["density"]
        self.fisher_batches = int(state["fisher_batches"])


def parameter_groups(named_parameters: NamedParams, base_lr: float, weight_decay: float,
                     no_decay: set[str] | None = None, lr_multipliers: Mapping[str, float] | None = None
                     ) -> list[dict[str, Any]]:
    """Torch param groups over ``(name, parameter)`` pairs: one per distinct (lr multiplier, weight decay).

    A parameter gets the multiplier of the first pattern of ``lr_multipliers`` it matches
    (:func:`kexue.optim.name_matches`: dotted components, globs or ``re:`` regexes), else 1; its group's ``lr`` is
    ``multiplier · base_lr`` (the Trainer's schedule scales each group's initial lr, so multipliers survive). Names
    in ``no_decay`` get weight decay 0.

    Returns: ``[{"params", "lr", "lr_multiplier", "weight_decay", "param_names"}, ...]``.
    Raises: ConfigError for a multiplier ≤ 0 or a pattern that matches no parameter (a typo must not pass silently).
    Source: https://kexue.fm/archives/7196 (a larger learning rate for the CRF / head).
    """
    multipliers = dict(lr_multipliers or {})
    for pattern, mult in multipliers.items():
        if not mult > 0:
            raise ConfigError(f"--lr-multiplier {pattern}: expected a value > 0, got {mult!r}")
    no_decay = no_decay or set()
    used: set[str] = set()
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, p in named_parameters:
        mult = 1.0
        for pattern, m in multipliers.items():
            if name_matches(name, pattern):
                mult = float(m)
                used.add(pattern)
                break
        wd = 0.0 if name in no_decay else float(weight_decay)
        group = groups.setdefault((mult, wd), {"params": [], "lr": base_lr * mult, "lr_multiplier": mult,
                                               "weight_decay": wd, "param_names": []})
        group["params"].append(p)
        group["param_names"].append(name)
    unused = [pat for pat in multipliers if pat not in used]
    if unused:
        raise ConfigError(f"--lr-multiplier: patterns matched no trainable parameter: {unused}")
    return list(groups.values())


def accumulation_trainer_config(trainer_cfg: TrainerConfig, accumulation_steps: int, in_momentum: bool,
                                **changes: Any) -> TrainerConfig:
    """``trainer_cfg`` set up for ``accumulation_steps`` micro-batches per optimizer update (plus ``changes``).

    Classic accumulation is the Trainer's ``gradient_accumulation_steps``. With accumulation inside the momentum
    (``accum-*`` optimizers) the Trainer steps once per micro-batch and the parameters move every k-th step, so
    ``--max-steps``, ``--eval-every`` and ``--save-every`` (which count optimizer updates) are multiplied by k.
    """
    k = accumulation_steps
    per_update = {name: getattr(trainer_cfg, name) * k for name in ("max_steps", "eval_every", "save_every")
                  if in_momentum and getattr(trainer_cfg, name) is not None}
    return dataclasses.replace(trainer_cfg, gradient_accumulation_steps=1 if in_momentum else k,
                               **per_update, **changes)


def build_optimizer_factory(name: str = "adamw", *, accumulation_steps: int = 1, accumulation_mode: str = "exact",
                            momentum: float = 0.9, reserve_p: float = 0.3, child_tuning_apply_to: str = "grad",
                            rescale_D: bool = False, lr_multipliers: Mapping[str, float] | None = None,
                            no_decay: set[str] | None = None
                            ) -> Callable[[NamedParams, TrainerConfig], torch.optim.Optimizer]:
    """An ``optimizer_factory(named_parameters, config)`` for :class:`kexue.train.Trainer`.

    ``config`` supplies ``learning_rate``, ``weight_decay``, ``adam_betas`` and ``adam_epsilon``; parameters are
    grouped by :func:`parameter_groups`.

    * ``"adamw"``: ``torch.optim.AdamW`` (classic accumulation stays the Trainer's ``gradient_accumulation_steps``);
    * ``"accum-adamw"``: :class:`~kexue.optim.AccumAdamW` with ``accumulation_steps = k`` — gradient accumulation
      inside Adam's moments, no gradient buffer. The Trainer must run with ``gradient_accumulation_steps=1``: each
      Trainer step is then a micro-step (the schedule, logging and evaluation intervals count micro-steps, and
      ``max_grad_norm`` clips each micro-batch's gradient);
    * ``"accum-sgdm"``: :class:`~kexue.optim.AccumSGDM` (EMA-form momentum β=``momentum``; its ``lr`` multiplies
      the EMA, i.e. an effective SGD learning rate ``lr·(1-β)``; ``weight_decay`` is L2 on the gradient);
    * ``"child-tuning-f"`` / ``"child-tuning-d"``: :class:`~kexue.optim.ChildTuningAdamW` with ``reserve_p``; the
      F-mask is drawn from torch's global generator (seeded by the Trainer, saved in checkpoints); D needs
      :class:`ChildTuningDHook` to install the Fisher mask.

    Args:
        name: one of :data:`OPTIMIZERS`.
        accumulation_steps: k for the ``accum-*`` optimizers (must be 1 for the others).
        accumulation_mode: ``"exact"`` | ``"sparse_update"`` | ``"beta_tilde"`` (see :class:`~kexue.optim.AccumAdam`).
        momentum: β of ``accum-sgdm``.
        reserve_p, child_tuning_apply_to, rescale_D: ChildTuning options (``apply_to`` ``"grad"`` | ``"update"``).
        lr_multipliers: ``{name pattern: multiplier}``.
        no_decay: parameter names exempt from weight decay (e.g.
            :func:`kexue.train.no_decay_parameter_names` of the model).

    Raises:
        ConfigError: unknown name, ``accumulation_steps != 1`` for a non-accumulating optimizer; when called, an
            ``accum-*`` optimizer with ``config.gradient_accumulation_steps > 1``, or bad multipliers.
    Sources: https://kexue.fm/archives/8634, https://kexue.fm/archives/8764, https://kexue.fm/archives/7196.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")
    if int(accumulation_steps) != accumulation_steps or accumulation_steps < 1:
        raise ConfigError(f"--accumulation-steps: expected an integer >= 1, got {accumulation_steps!r}")
    if not name.startswith("accum-") and accumulation_steps != 1:
        raise ConfigError(f"--optimizer {name}: accumulation_steps={accumulation_steps} applies to the accum-* "
                          "optimizers; classic accumulation is TrainerConfig.gradient_accumulation_steps")

    def factory(named_parameters: NamedParams, config: TrainerConfig) -> torch.optim.Optimizer:
        groups = parameter_groups(named_parameters, config.learning_rate, config.weight_decay, no_decay,
                                  lr_multipliers)
        lr, betas, eps = config.learning_rate, config.adam_betas, config.adam_epsilon
        if name.startswith("accum-") and config.gradient_accumulation_steps != 1:
            raise ConfigError(f"--optimizer {name}: accumulates inside the momentum; the Trainer's "
                              f"gradient_accumulation_steps must be 1, got {config.gradient_accumulation_steps}")
        if name == "adamw":
            return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
        if name == "accum-adamw":
            return AccumAdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=config.weight_decay,
                              accumulation_steps=accumulation_steps, mode=accumulation_mode)
        if name == "accum-sgdm":
            return AccumSGDM(groups, lr=lr, momentum=momentum, accumulation_steps=accumulation_steps,
                             mode=accumulation_mode, weight_decay=config.weight_decay)
        return ChildTuningAdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=config.weight_decay,
                                reserve_p=reserve_p, mode="F" if name == "child-tuning-f" else "D",
                                apply_to=child_tuning_apply_to, rescale_D=rescale_D)

    return factory
