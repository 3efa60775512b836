"""The run folder's life cycle: a run never replaces another by accident, one process writes a folder at a time,
crash leftovers are repaired, and ``--resume`` continues the same run or says why it cannot.

:func:`prepare_run_dir` is the first thing a recipe does (before it reads data or loads a model), so that every
refusal comes before any work; :class:`kexue.train.Trainer` calls it itself when the caller did not.

The rules, for ``output_dir`` = the run folder:

- a new run (neither ``resume`` nor ``overwrite``) needs a missing or empty folder; a non-empty one is refused,
  and nothing on disk is touched;
- ``overwrite`` deletes what the folder holds, and says so;
- ``resume`` continues from the latest complete checkpoint in ``checkpoints/``; a missing or empty folder starts
  a new run (said in the log); a non-empty folder without a checkpoint is refused (it would restart at step 0 and
  lose the old metrics); options that would change the training (every option except those in
  :data:`CHANGEABLE_ON_RESUME`) are compared with the run's ``config.json`` and any difference is refused, naming
  each option with its old and new value;
- a lock (``filelock`` on ``<output_dir>/.kexue.lock``) is held by the process writing the folder until it exits;
  a second process is refused at once;
- under the lock, the leftovers of a crash are repaired (:func:`kexue.train.checkpointing.recover_leftovers`):
  ``.old-*`` folders are moved back where their target is missing, stale ``.tmp-*`` / ``.old-*`` are deleted.

Under torchrun only rank 0 (``RANK`` unset or 0) takes the lock and changes the folder; the other ranks only
check the options.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from kexue.errors import ConfigError, StorageError
from kexue.train.checkpointing import list_checkpoints, recover_leftovers, storage_error
from kexue.train.config import FLAGS, TrainerConfig

LOCK_FILE = ".kexue.lock"
OPTIONS_KEY = "options"
"""The key of config.json that holds the options exactly as the run was started with (before a recipe derives
other values from them), which ``--resume`` compares with."""

CHANGEABLE_ON_RESUME = frozenset({
    "output_dir", "resume", "overwrite", "progress_bar", "eval_batch_size", "save_every", "keep_checkpoints",
    "log_every", "num_workers", "device", "extra_eval"})
"""Options that do not change what is trained (display, checkpoint frequency, post-training evaluations)."""

#: Flags of recipe options whose name is not simply ``--`` + the field name with dashes.
RECIPE_FLAGS = {"fgm_loss_mode": "--fgm-loss", "lora_targets": "--lora-target", "lr_multipliers": "--lr-multiplier",
                "length_bucketing": "--bucketing", "scratch.hidden_size": "--scratch-hidden",
                "scratch.num_hidden_layers": "--scratch-layers", "scratch.num_attention_heads": "--scratch-heads",
                "scratch.intermediate_size": "--scratch-hidden"}

_HELD_LOCKS: dict[str, FileLock] = {}  # run folders this process writes; a lock is kept until the process exits
_PREPARED: dict[str, RunDirectory] = {}  # prepared by a recipe, not yet taken by a Trainer


@dataclasses.dataclass
class RunDirectory:
    """A run folder prepared by :func:`prepare_run_dir`.

    Attributes:
        path: the folder.
        mode: ``"new"`` (a new run), ``"resume"`` (continue from a checkpoint) or ``"overwrite"`` (a new run after
            deleting the old contents).
        options: the options as given, ``{"trainer": TrainerConfig.to_dict(), **run_config}`` (JSON values);
            the Trainer stores them in config.json under :data:`OPTIONS_KEY`.
        messages: what was done (restored or removed leftovers, deleted contents), as logged.
    """

    path: Path
    mode: str
    options: dict[str, Any]
    messages: list[str] = dataclasses.field(default_factory=list)


def prepare_run_dir(config: TrainerConfig, run_config: Mapping[str, Any] | None = None,
                    log: Callable[[str], None] = print, *, remember: bool = True) -> RunDirectory:
    """Check and prepare ``config.output_dir`` for a run, before any data or model is loaded (rules above).

    Args:
        config: the trainer options (``output_dir``, ``resume``, ``overwrite`` and the options compared on resume).
        run_config: the recipe's own options (e.g. ``{"task": "sts", "sts": sts_config}``; dataclasses are
            stored as dicts); compared on resume like the trainer options.
        log: where to say what was done (deleted contents, repaired leftovers, a resume that starts afresh).
        remember: keep the result for the next :class:`~kexue.train.Trainer` that runs in this folder (which then
            does not prepare it again).

    Returns:
        the :class:`RunDirectory` (also remembered for the Trainer that runs in this folder next).

    Raises:
        ConfigError: naming ``--output`` and the folder: not empty (without ``--resume`` / ``--overwrite``), in use
            by another process, nothing to resume, or (naming each option, old -> new) ``--resume`` with options
            that change the training; ``--resume`` together with ``--overwrite``.
        StorageError: the folder cannot be created or written (naming the path).
    """
    out = Path(config.output_dir)
    options = _jsonable({"trainer": config.to_dict(), **dict(run_config or {})})
    if config.resume and config.overwrite:
        raise ConfigError("--resume and --overwrite: choose one (--resume continues the run in --output, "
                          "--overwrite deletes it and starts a new one)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out}: exists and is not a folder")
    main = os.environ.get("RANK", "0") == "0"
    contents = _contents(out)
    if main and contents and not (config.resume or config.overwrite):
        _refuse_if_locked(out)
        raise ConfigError(f"--output {out}: the folder is not empty (holds {_names(contents)}); pass --resume to "
                          "continue that run, --overwrite to replace it, or choose another --output")
    if main and contents and config.resume and not list_checkpoints(out / "checkpoints"):
        _refuse_if_locked(out)
        _no_checkpoint(out, contents)  # refused before the lock file is created: nothing on disk changes
    if main:
        _lock(out)
    run = RunDirectory(out, "overwrite" if config.overwrite else ("resume" if config.resume else "new"), options)
    if main:
        for folder in (out, out / "checkpoints"):
            run.messages += [f"{folder}: {m}" for m in _recover(folder)]
        contents = _contents(out)
        if config.overwrite and contents:
            for entry in contents:
                _remove(entry)
            run.messages.append(f"--overwrite: deleted the previous contents of {out} ({_names(contents)})")
    if config.resume:
        _check_resume(run, contents)
    for message in run.messages:
        log(message)
    if remember:
        _PREPARED[_key(out)] = run
    return run


def take_prepared(output_dir: str | Path) -> RunDirectory | None:
    """The :class:`RunDirectory` prepared for ``output_dir`` and not yet taken (used once by the Trainer)."""
    return _PREPARED.pop(_key(Path(output_dir)), None)


def release_run_dir(output_dir: str | Path) -> None:
    """Release this process's lock on ``output_dir`` (it is otherwise held until the process exits)."""
    lock = _HELD_LOCKS.pop(_key(Path(output_dir)), None)
    if lock is not None:
        lock.release(force=True)


def compare_options(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The options that differ between a run's saved options and new ones and would change its training.

    Args:
        saved, new: ``{"trainer": {...}, "<task>": {...}, ...}`` as stored under :data:`OPTIONS_KEY`.

    Returns:
        one ``"--flag: old -> new"`` line per differing option (options in :data:`CHANGEABLE_ON_RESUME` are
        skipped), in a stable order.
    """
    a, b = _flatten(_jsonable(saved)), _flatten(_jsonable(new))
    lines = []
    for key in sorted(set(a) | set(b)):
        leaf = key.split(".", 1)[1] if "." in key else key
        if leaf.rsplit(".", 1)[-1] in CHANGEABLE_ON_RESUME or a.get(key, _MISSING) == b.get(key, _MISSING):
            continue
        lines.append(f"{_flag(leaf)}: {_show(a.get(key, _MISSING))} -> {_show(b.get(key, _MISSING))}")
    return lines


# ---------------------------------------------------------------------------------------------------- helpers
_MISSING = object()


def _key(path: Path) -> str:
    return str(path.resolve())


def _contents(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.name != LOCK_FILE)


def _names(entries: list[Path], limit: int = 6) -> str:
    names = [p.name + ("/" if p.is_dir() else "") for p in entries]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _in_use(out: Path) -> ConfigError:
    return ConfigError(f"--output {out}: another kexue process is writing this run folder (lock "
                       f"{out / LOCK_FILE}); wait for it to finish or choose another --output")


def _refuse_if_locked(out: Path) -> None:
    """Raise "in use" when another process holds the folder's lock; creates nothing."""
    if _key(out) in _HELD_LOCKS or not (out / LOCK_FILE).is_file():
        return
    probe = FileLock(out / LOCK_FILE, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        raise _in_use(out) from None
    except OSError:
        return
    probe.release(force=True)


def _lock(out: Path) -> None:
    key = _key(out)
    if key in _HELD_LOCKS:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out / LOCK_FILE, timeout=0)
        lock.acquire()
    except Timeout:
        raise _in_use(out) from None
    except OSError as exc:
        raise storage_error(out, exc) from exc
    _HELD_LOCKS[key] = lock


def _recover(folder: Path) -> list[str]:
    try:
        return recover_leftovers(folder)
    except OSError as exc:
        raise storage_error(folder, exc) from exc


def _remove(entry: Path) -> None:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except OSError as exc:
        raise StorageError(f"--overwrite: cannot delete {entry}: {exc.strerror or exc}") from exc


def _check_resume(run: RunDirectory, contents: list[Path]) -> None:
    out = run.path
    if not list_checkpoints(out / "checkpoints"):
        if contents:
            _no_checkpoint(out, contents)
        run.mode = "new"
        run.messages.append(f"--resume: {out} holds no run yet; starting a new run")
        return
    saved = _saved_options(out / "config.json")
    if saved is None:
        return  # the Trainer still compares the checkpoint's own trainer options
    diff = compare_options(saved, run.options)
    if diff:
        raise ConfigError(f"--resume: these options differ from the run in {out} and would change its training: "
                          + "; ".join(diff) + " (resume with the saved values, or start a new run with "
                          "--overwrite or another --output)")


def _no_checkpoint(out: Path, contents: list[Path]) -> None:
    raise ConfigError(f"--resume: {out} holds no checkpoint to continue from (it holds {_names(contents)}); "
                      "pass --overwrite to start a new run there, or choose another --output")


def _saved_options(path: Path) -> dict[str, Any] | None:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    options = saved.get(OPTIONS_KEY) if isinstance(saved, dict) else None
    return options if isinstance(options, dict) else None


def _jsonable(obj: Any) -> Any:
    """JSON values of ``obj`` (dataclasses as dicts, tuples as lists, anything else unknown as its ``str``)."""
    def default(o: Any) -> Any:
        return dataclasses.asdict(o) if dataclasses.is_dataclass(o) and not isinstance(o, type) else str(o)
    return json.loads(json.dumps(obj, default=default))


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _flag(leaf: str) -> str:
    if leaf in FLAGS:
        return FLAGS[leaf]
    if leaf in RECIPE_FLAGS:
        return RECIPE_FLAGS[leaf]
    return "--" + leaf.replace(".", "-").replace("_", "-")


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    if value is None:
        return "none"
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
