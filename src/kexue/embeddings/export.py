"""Export a trained :class:`SentenceEncoder` as a sentence-transformers folder.

The folder holds the backbone in the Hugging Face layout at its root (module 0,
``sentence_transformers.models.Transformer``) and a ``1_Pooling`` module, so that
``sentence_transformers.SentenceTransformer(folder)`` encodes to the same vectors as kexue.
"""

from __future__ import annotations

import json
from pathlib import Path

from kexue.embeddings.encoder import SentenceEncoder
from kexue.errors import ConfigError

# kexue pooling -> sentence-transformers Pooling flags; first-last-avg and pooler have no equivalent there.
_ST_POOLING = {"cls": "pooling_mode_cls_token", "last-avg": "pooling_mode_mean_tokens"}
_TRANSFORMERS_FAMILIES = ("bert", "roformer")


def export_sentence_transformers(encoder: SentenceEncoder, out: str | Path) -> Path:
    """Write ``encoder`` as a sentence-transformers model folder at ``out``; returns the folder.

    Raises:
        ConfigError: the pooling mode (``pooler``, ``first-last-avg``) or the backbone family
            (``roformer_v2``, which transformers cannot load) has no sentence-transformers equivalent.
    """
    if encoder.pooling not in _ST_POOLING:
        raise ConfigError(
            f"--format sentence-transformers: pooling {encoder.pooling!r} has no sentence-transformers "
            f"equivalent (supported: {', '.join(_ST_POOLING)})")
    family = getattr(encoder.backbone.config, "family", "bert")
    if family not in _TRANSFORMERS_FAMILIES:
        raise ConfigError(f"--format sentence-transformers: family {family!r} cannot be loaded by transformers "
                          f"(supported: {', '.join(_TRANSFORMERS_FAMILIES)})")
    out = Path(out)
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
    (out / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": encoder.max_length, "do_lower_case": False}, indent=2), encoding="utf-8")
    return out
