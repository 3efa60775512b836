"""The Trainer: a model-agnostic training loop with hooks, evaluation, keep-best, atomic checkpoints and exact
resume, bf16 autocast and torchrun data parallelism.

See :mod:`kexue.train.hooks` for the exact call order of a step.

Ctrl-C (SIGINT, in a single-process run started from the main thread) does not stop the run in the middle of a
step: the current step finishes, a checkpoint is saved, where it went is printed, and ``KeyboardInterrupt`` is
raised (the ``kexue`` command exits with status 130); ``--resume`` continues exactly from there. A second Ctrl-C
stops at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, default_collate

from kexue.errors import ConfigError, StorageError
from kexue.train import distributed as D
from kexue.train.batching import BatchSampler, epoch_generator, move_to_device, random_batches, shard_batch
from kexue.train.batching import count_tokens as default_count_tokens
from kexue.train.checkpointing import (atomic_directory, default_save_model, find_latest_checkpoint, is_write_failure,
                                      list_checkpoints, load_checkpoint, save_checkpoint, storage_error)
from kexue.train.config import TrainerConfig
from kexue.train.hooks import Hook, HookList
from kexue.train.interrupt import GracefulInterrupt
from kexue.train.logging import MetricsLog, ProgressBar, read_metrics
from kexue.train.optimization import default_optimizer, linear_warmup_decay, no_decay_parameter_names, warmup_steps_for
from kexue.train.plot import plot_metrics
from kexue.train.run_folder import OPTIONS_KEY, RunDirectory, prepare_run_dir, take_prepared
from kexue.train.seed import capture_rng_state, restore_rng_state, seed_everything
from kexue.train.state import TrainerState, build_checkpoint, restore_checkpoint

LossOutput = Tensor | Mapping[str, Tensor]
EXPORT_INFO = "trainer_export.json"
"""Written into ``best/`` and ``last/``: the step, the metric that selected the export and its evaluation."""


class Trainer:
    """Train any ``nn.Module`` with a user-supplied loss; evaluate, keep the best, checkpoint, resume.

    Args:
        model: the module to train (moved to ``config.device``).
        config: a :class:`TrainerConfig`.
        train_data: a map-style dataset (``len`` and integer indexing) of training examples.
        compute_loss: ``compute_loss(model, batch) -> Tensor | dict[str, Tensor]``; a scalar loss, or a dict
            with a scalar ``"loss"`` plus other scalars to log (e.g. per-task losses). ``model`` is the
            (possibly DDP-wrapped) training module; ``batch`` is ``collate_fn``'s output on the device.
        collate_fn: list of examples -> batch (default ``torch.utils.data.default_collate``).
        evaluate: ``evaluate(model) -> dict[str, float] | None``, run in ``eval()`` mode under ``no_grad``
            and the run's precision, on rank 0 only; metrics are shared with every rank.
        batch_sampler: ``batch_sampler(epoch, generator) -> global batches of indices`` (see
            :data:`kexue.train.batching.BatchSampler`); default: a fresh shuffle per epoch cut into
            ``batch_size`` batches. It must take its randomness from ``generator`` only.
        optimizer_factory: ``optimizer_factory(named_parameters, config) -> Optimizer`` over the trainable
            ``(name, parameter)`` pairs; default AdamW with no weight decay on biases and norm weights.
        hooks: :class:`Hook` instances, called in order.
        save_model: ``save_model(model, folder)`` for the ``best/`` and ``last/`` exports (default
            :func:`default_save_model`); the folder exists and is swapped in atomically afterwards.
        count_tokens: batch -> real token count for the tokens/s figure (default: sum of attention masks).
        run_config: extra JSON-serialisable entries for the run's config.json (next to ``"trainer"``).

    Raises:
        ConfigError: ``metric_for_best`` without ``evaluate``; an empty training set.

    Attributes available to hooks: ``model`` (unwrapped), ``train_model`` (DDP-wrapped when distributed),
    ``optimizer``, ``scheduler`` (after ``fit`` starts), ``config``, ``state`` (:class:`TrainerState`),
    ``device``, ``rank``, ``world_size``, ``total_steps``, ``resumed``.
    """

    def __init__(self, model: nn.Module, config: TrainerConfig, train_data: Sequence[Any], *,
                 compute_loss: Callable[[nn.Module, Any], LossOutput],
                 collate_fn: Callable[[list[Any]], Any] | None = None,
                 evaluate: Callable[[nn.Module], Mapping[str, float] | None] | None = None,
                 batch_sampler: BatchSampler | None = None,
                 optimizer_factory: Callable[[list[tuple[str, nn.Parameter]], TrainerConfig],
                                             torch.optim.Optimizer] | None = None,
                 hooks: Sequence[Hook] = (),
                 save_model: Callable[[nn.Module, Path], None] | None = None,
                 count_tokens: Callable[[Any], int | None] | None = None,
                 run_config: Mapping[str, Any] | None = None) -> None:
        if config.metric_for_best is not None and evaluate is None:
            raise ConfigError("metric_for_best: set, but no evaluate function was given")
        if len(train_data) == 0:
            raise ConfigError("train_data: the training set is empty")
        self.config = config
        self.train_data = train_data
        self._compute_loss = compute_loss
        self.collate_fn = collate_fn or default_collate
        self._evaluate = evaluate
        self.batch_sampler = batch_sampler or (
            lambda epoch, gen: random_batches(len(train_data), config.batch_size, gen, config.drop_last))
        self.hooks = HookList(hooks)
        self._save_model = save_model or default_save_model
        self._count_tokens = count_tokens or default_count_tokens
        self.run_config = dict(run_config or {})
        if config.device is None:
            device = f"cuda:{D.get_local_rank()}" if torch.cuda.is_available() else "cpu"
        else:
            device = config.device
        self.device = torch.device(device)
        D.init_distributed(self.device.type)
        self.rank, self.world_size = D.get_rank(), D.get_world_size()
        self.model = model.to(self.device)
        self.train_model = D.wrap_model(self.model, self.device, config.find_unused_parameters)
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if optimizer_factory is None:
            optimizer_factory = partial(default_optimizer, no_decay=no_decay_parameter_names(self.model))
        self._optimizer_factory = optimizer_factory
        self._params = params
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.state = TrainerState()
        self.resumed = False
        self.total_steps = self._count_total_steps()
        self._micro_scale = 1.0
        self._epoch_len = 1
        self._log_sums: dict[str, float] = {}  # per-rank sums of logged scalars since the last train event
        self._log_steps = 0
        self._plotted_step: int | None = None
        out = Path(config.output_dir)
        self.output_dir, self.checkpoints_dir = out, out / "checkpoints"
        self.metrics_log = MetricsLog(out / "metrics.jsonl", enabled=D.is_main_process())
        self.run_dir: RunDirectory | None = None
        self._interrupt = GracefulInterrupt(self._log, enabled=self.world_size == 1)

    # ---------------------------------------------------------------- API for hooks and callers
    def compute_loss(self, batch: Any) -> dict[str, Tensor]:
        """Run the user's loss on ``train_model`` under the run's precision; always returns a dict with
        ``"loss"`` (scalar tensor).

        Raises:
            ConfigError: if the loss function returns neither a scalar tensor nor a dict with a scalar ``"loss"``.
        """
        with self._autocast():
            out = self._compute_loss(self.train_model, batch)
        if isinstance(out, Tensor):
            out = {"loss": out}
        if not isinstance(out, Mapping) or "loss" not in out:
            found = sorted(out) if isinstance(out, Mapping) else type(out).__name__
            raise ConfigError(f"compute_loss: expected a scalar tensor or a dict with 'loss', got {found}")
        if not isinstance(out["loss"], Tensor) or out["loss"].dim() != 0:
            raise ConfigError("compute_loss: 'loss' must be a scalar (0-dim) tensor")
        return dict(out)

    def backward(self, loss: Tensor) -> None:
        """Back-propagate ``loss`` divided by the number of micro-batches in the current optimizer step."""
        (loss * self._micro_scale).backward()

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's micro-batches (lists of example indices) for ``epoch``, in training order."""
        batches = [list(b) for b in self.batch_sampler(epoch, epoch_generator(self.config.seed, epoch))]
        return [shard_batch(b, self.rank, self.world_size) for b in batches]

    def train_batches(self, epoch: int = 0, skip: int = 0):
        """Iterate over this rank's collated micro-batches of ``epoch`` (on the device), skipping the first
        ``skip``; uses no global randomness (e.g. for ChildTuning-D's Fisher pass)."""
        batches = self.epoch_batches(epoch)[skip:]
        gen = epoch_generator(self.config.seed + 1, epoch)
        loader = DataLoader(self.train_data, batch_sampler=batches, collate_fn=self.collate_fn,
                            num_workers=self.config.num_workers, generator=gen)
        for idx, batch in zip(batches, loader):
            yield idx, move_to_device(batch, self.device)

    # ---------------------------------------------------------------- the loop
    def fit(self) -> dict[str, Any]:
        """Train until ``max_steps`` / ``epochs``; evaluate, keep the best, checkpoint, export ``last/``.

        Returns:
            ``{"global_step", "best_metric", "best_step", "best": metrics at the best step, "final": metrics
            of the last evaluation}`` (metric dicts ``None`` without ``evaluate``).

        The run folder is prepared first (:func:`kexue.train.prepare_run_dir`, unless the caller already did).
        On resume, ``best/`` is made consistent with the checkpoint: if it is missing (a crash between its two
        renames that could not be repaired, or a deleted folder) it is re-exported when the checkpoint is the best
        step, else best tracking restarts and a final evaluation is run, so ``best/`` always exists at the end.

        Raises:
            ConfigError: the run folder's rules (:mod:`kexue.train.run_folder`); resuming with options that change
                the training or a different number of processes.
            CheckpointError: an unreadable or incompatible checkpoint.
            StorageError: a checkpoint, export or log cannot be written (naming the path and the last complete
                checkpoint).
            KeyboardInterrupt: after Ctrl-C, once the checkpoint of the current step is saved.
        """
        cfg = self.config
        self.run_dir = (take_prepared(cfg.output_dir)
                        or prepare_run_dir(cfg, self.run_config, log=self._log, remember=False))
        try:
            with self._interrupt:
                return self._fit()
        except StorageError as err:
            latest = find_latest_checkpoint(self.checkpoints_dir)
            if latest:
                where = f"the last complete checkpoint is {latest} (free space, then continue with --resume)"
            else:  # --resume would refuse a folder without a checkpoint
                where = "no complete checkpoint was written (free space, then start again with --overwrite)"
            raise StorageError(f"{err}; {where}") from err

    def _fit(self) -> dict[str, Any]:
        cfg = self.config
        seed_everything(cfg.seed + self.rank)
        self.optimizer = self._optimizer_factory(self._params, cfg)
        self.scheduler = linear_warmup_decay(self.optimizer, self.total_steps,
                                             warmup_steps_for(self.total_steps, cfg.warmup_ratio))
        self.hooks.call("setup", self)
        rng_state = self._maybe_resume()
        if D.is_main_process():
            record = {"trainer": cfg.to_dict(), **self.run_config, OPTIONS_KEY: self.run_dir.options}
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                (self.output_dir / "config.json").write_text(json.dumps(record, indent=2, ensure_ascii=False)
                                                             + "\n")
            except OSError as exc:
                raise storage_error(self.output_dir / "config.json", exc) from exc
        if self.resumed:
            self._reconcile_best()
        self.hooks.call("on_train_begin", self)
        if rng_state is not None:
            restore_rng_state(rng_state)
        self.model.train()
        bar = ProgressBar(self.total_steps, self.state.global_step, cfg.progress_bar and D.is_main_process())
        window: dict[str, float] = {"examples": 0, "tokens": 0, "time": 0.0}
        try:
            while self.state.global_step < self.total_steps:
                self._run_epoch(bar, window)
                self._check_interrupt()
            if self.state.last_eval_step != self.state.global_step:
                self._run_evaluation(bar)
            self.hooks.call("on_train_end", self)
            self._export("last")
            self._plot()
        finally:
            bar.close()
        s = self.state
        return {"global_step": s.global_step, "best_metric": s.best_metric, "best_step": s.best_step,
                "best": s.best_metrics, "final": s.last_metrics}

    def _run_epoch(self, bar: ProgressBar, window: dict[str, float]) -> None:
        cfg, s, sums = self.config, self.state, self._log_sums
        batches = self.epoch_batches(s.epoch)
        n, k = len(batches), cfg.gradient_accumulation_steps
        if n == 0:
            raise ConfigError(f"--batch-size (batch_size): epoch {s.epoch} has no batch (drop_last=True and fewer "
                              f"examples than --batch-size {cfg.batch_size})")
        self._epoch_len = n
        self.hooks.call("on_epoch_begin", self, s.epoch)
        stream = self.train_batches(s.epoch, skip=s.batches_done)
        while s.batches_done < n and s.global_step < self.total_steps:
            group = min(k, n - s.batches_done)
            self._micro_scale = 1.0 / group
            self.hooks.call("on_step_begin", self)
            t0 = time.perf_counter()
            for i in range(group):
                idx, batch = next(stream)
                sync = i == group - 1 or not isinstance(self.train_model, nn.parallel.DistributedDataParallel)
                with contextlib.nullcontext() if sync else self.train_model.no_sync():
                    outputs = self.compute_loss(batch)
                    loss = self.hooks.transform_loss(self, batch, outputs["loss"], outputs)
                    self.backward(loss)
                    self.hooks.call("after_backward", self, batch, loss)
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) / group
                for key, val in outputs.items():
                    if key != "loss" and isinstance(val, Tensor) and val.dim() == 0:
                        sums[key] = sums.get(key, 0.0) + float(val.detach()) / group
                window["examples"] += len(idx)
                window["tokens"] += self._count_tokens(batch) or 0
            s.batches_done += group
            self.hooks.call("before_optimizer_step", self)
            if cfg.max_grad_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_([p for _, p in self._params], cfg.max_grad_norm)
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            s.global_step += 1
            self.hooks.call("on_step_end", self)
            self._log_steps += 1
            window["time"] += time.perf_counter() - t0
            self._maybe_log(bar, window, n)
            if cfg.eval_every is not None and s.global_step % cfg.eval_every == 0:
                self._run_evaluation(bar)
            if cfg.save_every is not None and s.global_step % cfg.save_every == 0:
                self._save_checkpoint()
            if self._interrupt.requested and s.batches_done < n and s.global_step < self.total_steps:
                self._check_interrupt()
        if s.batches_done >= n:
            self.hooks.call("on_epoch_end", self, s.epoch)
            s.epoch, s.batches_done = s.epoch + 1, 0
            if s.last_eval_step != s.global_step:
                self._run_evaluation(bar)
            self._plot()
            self._save_checkpoint()
        elif s.global_step >= self.total_steps:  # max_steps reached in the middle of an epoch
            if s.last_eval_step != s.global_step:
                self._run_evaluation(bar)
            self._save_checkpoint()

    def _maybe_log(self, bar: ProgressBar, window: dict[str, float], n: int) -> None:
        s, sums, steps = self.state, self._log_sums, self._log_steps
        lr = self.scheduler.get_last_lr()[0]
        elapsed = max(window["time"], 1e-9)
        bar.update(1, loss=sums["loss"] / steps, lr=lr, examples_per_s=window["examples"] / elapsed)
        if s.global_step % self.config.log_every != 0 and s.global_step < self.total_steps:
            return
        record: dict[str, Any] = {"event": "train", "step": s.global_step,
                                  "epoch": round(s.epoch + s.batches_done / n, 4), "lr": lr}
        for key, val in sums.items():
            record[key] = D.mean_over_ranks(val / steps)
        record["examples_per_s"] = D.sum_over_ranks(window["examples"]) / elapsed
        tokens = D.sum_over_ranks(window["tokens"])
        if tokens:
            record["tokens_per_s"] = tokens / elapsed
        self.metrics_log.write(record)
        window.update(examples=0, tokens=0, time=0.0)
        sums.clear()
        self._log_steps = 0

    # ---------------------------------------------------------------- evaluation, export, checkpoints
    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run_evaluation(self, bar: ProgressBar | None = None) -> dict[str, float] | None:
        s, cfg = self.state, self.config
        s.last_eval_step = s.global_step
        if self._evaluate is None:
            return None
        metrics = None
        if D.is_main_process():
            model = self.hooks.eval_model(self, self.model)
            was_training = model.training
            model.eval()
            with torch.no_grad(), self._autocast():
                result = self._evaluate(model)
            model.train(was_training)
            self.model.train()
            metrics = None if result is None else {k: float(v) for k, v in result.items()}
        metrics = D.broadcast_object(metrics)
        if metrics is None:
            return None
        s.last_metrics = metrics
        self.hooks.call("on_evaluate", self, metrics)
        epoch = round(s.epoch + s.batches_done / max(self._epoch_len, 1), 4)
        self.metrics_log.write({"event": "eval", "step": s.global_step, "epoch": epoch, **metrics})
        if bar is not None:
            bar.write(f"step {s.global_step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if cfg.metric_for_best is not None:
            if cfg.metric_for_best not in metrics:
                raise ConfigError(f"metric_for_best: {cfg.metric_for_best!r} is not among the evaluation "
                                  f"metrics {sorted(metrics)}")
            value = metrics[cfg.metric_for_best]
            better = s.best_metric is None or (value > s.best_metric if cfg.greater_is_better
                                               else value < s.best_metric)
            if better:
                s.best_metric, s.best_step, s.best_metrics = value, s.global_step, dict(metrics)
                self._export("best")
        return metrics

    def _export(self, name: str) -> None:
        if D.is_main_process():
            model = self.hooks.eval_model(self, self.model)
            s = self.state
            info = {"name": name, "step": s.global_step, "metric_for_best": self.config.metric_for_best,
                    "metrics": s.best_metrics if name == "best" else s.last_metrics}
            with atomic_directory(self.output_dir / name) as tmp:
                try:
                    self._save_model(model, tmp)
                except Exception as exc:
                    if not is_write_failure(exc):
                        raise
                    raise storage_error(self.output_dir / name, exc) from exc
                (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        D.barrier()

    def _reconcile_best(self) -> None:
        """After a resume: make sure ``best/`` exists and is not older than the checkpoint's best step."""
        s, cfg = self.state, self.config
        if cfg.metric_for_best is None or s.best_step is None:
            return
        exported = _read_export_step(self.output_dir / "best")
        if exported is not None and exported >= s.best_step:
            return
        if s.best_step == s.global_step:
            self._log(f"resume: {self.output_dir / 'best'} was missing or stale; re-exported it from the "
                      f"checkpoint of step {s.global_step}")
            self._export("best")
            return
        self._log(f"resume: {self.output_dir / 'best'} is missing and the weights of its step {s.best_step} are "
                  "no longer saved; best/ now holds the best of the evaluations from here on")
        s.best_metric = s.best_step = s.best_metrics = None
        s.last_eval_step = None  # evaluate at least once more, so best/ exists at the end

    # ---------------------------------------------------------------- Ctrl-C
    def _check_interrupt(self) -> None:
        if not self._interrupt.requested:
            return
        if not any(step == self.state.global_step for step, _ in list_checkpoints(self.checkpoints_dir)):
            self._save_checkpoint()
        where = find_latest_checkpoint(self.checkpoints_dir)
        message = (f"interrupted at step {self.state.global_step} of {self.total_steps}: checkpoint saved in {where}; "
                   f"continue with --resume (same --output {self.output_dir})")
        self._log(message)
        raise KeyboardInterrupt(message)

    def _log(self, message: str) -> None:
        if D.is_main_process():
            print(message, file=sys.stderr, flush=True)

    def _plot(self) -> None:
        if self._plotted_step == self.state.global_step:
            return
        self._plotted_step = self.state.global_step
        if D.is_main_process() and self.metrics_log.path.is_file():
            plot_metrics(read_metrics(self.metrics_log.path), self.output_dir / "plot.png",
                         metric=self.config.metric_for_best)

    def _save_checkpoint(self) -> None:
        per_rank = D.gather_objects({"rng": capture_rng_state(), "log_sums": dict(self._log_sums),
                                     "log_steps": self._log_steps})
        if D.is_main_process():
            save_checkpoint(self.checkpoints_dir, self.state.global_step, build_checkpoint(self, per_rank),
                            keep=self.config.keep_checkpoints)
        D.barrier()

    def _maybe_resume(self) -> dict[str, Any] | None:
        cfg = self.config
        if not cfg.resume:
            if list_checkpoints(self.checkpoints_dir):
                raise ConfigError(f"--output {self.output_dir}: already holds checkpoints; pass --resume to continue "
                                  "that run, --overwrite to replace it, or choose another --output")
            if D.is_main_process():
                self.metrics_log.path.unlink(missing_ok=True)
            return None
        path = find_latest_checkpoint(self.checkpoints_dir)
        if path is None:
            if D.is_main_process():
                self.metrics_log.path.unlink(missing_ok=True)
            return None
        mine = restore_checkpoint(self, load_checkpoint(path), path)
        self.resumed = True
        self._log(f"resumed from {path} (step {self.state.global_step} of {self.total_steps})")
        D.barrier()
        self.metrics_log.truncate_after(self.state.global_step)
        self._log_sums, self._log_steps = dict(mine["log_sums"]), int(mine["log_steps"])
        return mine["rng"]

    def _count_total_steps(self) -> int:
        cfg = self.config
        if cfg.max_steps is not None:
            return cfg.max_steps
        k = cfg.gradient_accumulation_steps
        total = sum(math.ceil(len(self.epoch_batches(e)) / k) for e in range(cfg.epochs))
        if total == 0:
            raise ConfigError("--batch-size (batch_size): no complete batch in the training data (drop_last=True)")
        return total


def _read_export_step(folder: Path) -> int | None:
    """The step recorded in an export's :data:`EXPORT_INFO`, or ``None`` if the export or its record is missing."""
    try:
        return int(json.loads((folder / EXPORT_INFO).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
