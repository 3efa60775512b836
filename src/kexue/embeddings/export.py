"""Export a trained :class:`SentenceEncoder` as a sentence-transformers folder.

The folder holds the backbone in the Hugging Face layout at its root (module 0,
``sentence_transformers.models.Transformer``) and a ``1_Pooling`` module, so that
``sentence_transformers.SentenceTransformer(folder)`` encodes to the same vectors as kexue. A whitening saved with
the encoder (:mod:`kexue.embeddings.whitening`) becomes a ``2_Dense`` module: weight ``kernel^T``, bias
``-mean @ kernel``, identity activation.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from kexue.embeddings.encoder import SentenceEncoder
from kexue.errors import ConfigError, StorageError

# kexue pooling -> sentence-transformers Pooling flags; first-last-avg and pooler have no equivalent there.
_ST_POOLING = {"cls": "pooling_mode_cls_token", "last-avg": "pooling_mode_mean_tokens"}
_TRANSFORMERS_FAMILIES = ("bert", "roformer")


def check_export_target(out: str | Path, overwrite: bool = False) -> None:
    """Refuse an export into a non-empty folder (or a file) unless ``overwrite``; changes nothing on disk.

    Raises:
        ConfigError: naming the folder and ``--overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another export folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: the export folder is not empty; pass --overwrite to replace it, or choose another "
                          "folder")


def export_sentence_transformers(encoder: SentenceEncoder, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``encoder`` as a sentence-transformers model folder at ``out``; returns the folder.

    The folder is written into a hidden temporary folder beside ``out`` and moved into place when complete, so
    a failed export leaves ``out`` as it was.

    Args:
        overwrite: replace a non-empty ``out`` (else refused).

    Raises:
        ConfigError: ``out`` is not empty (without ``overwrite``); the pooling mode (``pooler``, ``first-last-avg``)
            or the backbone family (``roformer_v2``, which transformers cannot load) has no sentence-transformers
            equivalent.
        StorageError: ``out`` cannot be written (naming it).
    """
    check_export_target(out, overwrite)
    if encoder.pooling not in _ST_POOLING:
        raise ConfigError(
            f"--format sentence-transformers: pooling {encoder.pooling!r} has no sentence-transformers "
            f"equivalent (supported: {', '.join(_ST_POOLING)})")
    family = getattr(encoder.backbone.config, "family", "bert")
    if family not in _TRANSFORMERS_FAMILIES:
        raise ConfigError(f"--format sentence-transformers: family {family!r} cannot be loaded by transformers "
                          f"(supported: {', '.join(_TRANSFORMERS_FAMILIES)})")
    final = Path(out)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
        try:
            _write(encoder, tmp)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise StorageError(f"cannot write {final}: {exc.strerror or exc}") from exc
    return final


def _write(encoder: SentenceEncoder, out: Path) -> None:
    encoder.save_pretrained(out)
    (out / "1_Pooling").mkdir(exist_ok=True)
    flags = {flag: False for flag in ("pooling_mode_cls_token", "pooling_mode_mean_tokens",
                                      "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")}
    flags[_ST_POOLING[encoder.pooling]] = True
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": encoder.hidden_size, **flags}, indent=2), encoding="utf-8")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if encoder.whitening is not None:
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        _write_whitening_dense(encoder.whitening, out / "2_Dense")
    (out / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": encoder.max_length, "do_lower_case": False}, indent=2), encoding="utf-8")


def _write_whitening_dense(whitening, folder: Path) -> None:
    """A sentence-transformers ``Dense`` folder computing ``(x - mean) @ kernel`` as ``x W^T + b`` (float32)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    folder.mkdir(exist_ok=True)
    weight = torch.from_numpy(np.ascontiguousarray(whitening.kernel.T)).float()
    bias = torch.from_numpy(-(whitening.mean @ whitening.kernel)).float()
    save_file({"linear.weight": weight.contiguous(), "linear.bias": bias.contiguous()},
              str(folder / "model.safetensors"))
    config = {"in_features": whitening.input_dim, "out_features": whitening.n_components, "bias": True,
              "activation_function": "torch.nn.modules.linear.Identity"}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
