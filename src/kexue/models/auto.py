"""Load any encoder: kexue's Transformer when the checkpoint is a supported family, else transformers.AutoModel.

Both paths check every weight: a key the model needs that the checkpoint lacks (it would stay randomly
initialised) or a checkpoint key the model has no place for is a :class:`~kexue.errors.CheckpointError` unless
the caller allows it by an fnmatch glob (``allow_missing`` / ``allow_unexpected``). Also here: the position limit
of a checkpoint (how long ``--max-length`` may be), read from its config.json alone.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kexue.errors import CheckpointError, ConfigError
from kexue.models.checkpoint import read_config
from kexue.models.config import SUPPORTED_MODEL_TYPES, TransformerConfig
from kexue.hub import resolve_model_path
from kexue.models.outputs import TransformerOutput
from kexue.models.transformer import Transformer


class HFEncoder(nn.Module):
    """Thin wrapper over a ``transformers.AutoModel`` whose forward returns a :class:`TransformerOutput`.

    Attributes:
        model: the wrapped transformers model; ``config``: its config (``hidden_size`` etc.).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def get_input_embeddings(self) -> nn.Embedding:
        """The wrapped model's word embeddings."""
        return self.model.get_input_embeddings()

    def save_pretrained(self, path: str | Path) -> None:
        """Save the wrapped model with transformers' own ``save_pretrained`` (its layout, loadable by AutoModel)."""
        self.model.save_pretrained(str(path))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attention_scores: bool = False, mask_kind: str | None = None) -> TransformerOutput:
        """``input_ids`` ``[B, L]`` -> TransformerOutput (last_hidden_state, hidden_states, pooler_output).

        Raises:
            ConfigError: ``output_attention_scores`` or a ``mask_kind`` other than bidirectional (kexue-only).
        """
        if output_attention_scores or mask_kind not in (None, "bidirectional"):
            raise ConfigError("output_attention_scores / mask_kind need a kexue Transformer, not a transformers model")
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": output_hidden_states}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.model(**kwargs)
        return TransformerOutput(last_hidden_state=out.last_hidden_state,
                                 hidden_states=tuple(out.hidden_states) if output_hidden_states else None,
                                 pooler_output=getattr(out, "pooler_output", None))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def load_auto_model(folder: Path, *, allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                    why: str = "") -> HFEncoder:
    """``transformers.AutoModel.from_pretrained(folder)`` wrapped in an :class:`HFEncoder`, with its loading info
    checked as kexue's own loader checks a checkpoint.

    Args:
        allow_missing / allow_unexpected: fnmatch globs of the transformers key names that may be missing (and stay
            randomly initialised) / present but unused.
        why: why kexue's own Transformer does not take this checkpoint (for the messages).
    Raises:
        ConfigError: transformers does not know the config's ``model_type`` either.
        CheckpointError: missing, unexpected or mis-shaped weights (listed), or weights transformers cannot read.
    """
    from transformers import AutoConfig, AutoModel

    config_path = folder / "config.json"
    because = f" (kexue's Transformer: {why})" if why else ""
    try:
        AutoConfig.from_pretrained(str(folder))
    except (ValueError, KeyError, OSError) as err:
        model_type = read_config(folder).get("model_type")
        raise ConfigError(f"{config_path}: model_type={model_type!r} is supported neither by kexue's Transformer "
                          f"(model_type {', '.join(SUPPORTED_MODEL_TYPES[:2])}) nor by transformers.AutoModel "
                          f"({_first_line(err)})") from err
    try:
        model, info = AutoModel.from_pretrained(str(folder), output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{folder}: transformers.AutoModel cannot load these weights: {_first_line(err)}"
                              f"{because}") from err
    allow_missing, allow_unexpected = tuple(allow_missing), tuple(allow_unexpected)
    missing = [k for k in info.get("missing_keys", ()) if not _allowed(k, allow_missing)]
    unexpected = [k for k in info.get("unexpected_keys", ()) if not _allowed(k, allow_unexpected)]
    mismatched = {k: (tuple(want), tuple(got)) for k, got, want in info.get("mismatched_keys", ())
                  if not _allowed(k, allow_missing)}
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"cannot load {folder} exactly through transformers.AutoModel ({type(model).__name__}){because}; "
            "missing weights would stay randomly initialised: pass allow_missing=(globs) / allow_unexpected=(globs) "
            "to accept that", missing=missing, unexpected=unexpected, mismatched=mismatched)
    return HFEncoder(model.eval())


def _allowed(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def load_encoder(name_or_path: str | Path, *, allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                 **kwargs: Any) -> tuple[nn.Module, str]:
    """Load an encoder for any Hugging Face checkpoint folder, run folder (its ``best/``) or alias.

    Returns:
        ``(module, kind)``: ``kind == "kexue"`` with a :class:`Transformer` when ``config.json`` describes a
        supported family (bert, roformer, roformer_v2); otherwise ``kind == "transformers"`` with an
        :class:`HFEncoder` over ``transformers.AutoModel.from_pretrained`` (see :func:`load_auto_model`). Both
        forward to a TransformerOutput. ``kwargs`` go to :meth:`Transformer.from_pretrained`.
    Args:
        allow_missing / allow_unexpected: fnmatch globs of weight names that may be missing (randomly initialised)
            or present but unused; by default every weight must load exactly, on both paths.
    Raises:
        ConfigError: unknown alias / missing folder; a ``model_type`` neither kexue nor transformers knows; a
            bert / roformer config with an option kexue's Transformer does not support (e.g.
            ``position_embedding_type: relative_key``): these never fall back to AutoModel.
        CheckpointError: missing, unexpected or mis-shaped weights, or unreadable weight files.
    """
    folder = resolve_model_path(name_or_path)
    hf_config = read_config(folder)
    try:
        TransformerConfig.from_hf_config(hf_config)
    except ConfigError as reason:
        if hf_config.get("model_type") in SUPPORTED_MODEL_TYPES:
            raise ConfigError(f"{folder / 'config.json'}: {reason}. kexue does not hand a {hf_config['model_type']} "
                              "checkpoint to transformers.AutoModel instead: it could ignore the option or start "
                              "weights from random values") from reason
        return load_auto_model(folder, allow_missing=allow_missing, allow_unexpected=allow_unexpected,
                               why=str(reason)), "transformers"
    return Transformer.from_pretrained(folder, allow_missing=allow_missing, allow_unexpected=allow_unexpected,
                                       **kwargs), "kexue"


#: transformers model types whose position ids start after the padding id (RoBERTa's layout).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer")


def position_limit(hf_config: Mapping[str, Any]) -> int | None:
    """The most tokens one sequence may have for a model with this ``config.json`` dictionary.

    kexue's BERT family: ``max_position_embeddings`` (learned absolute positions); RoFormer / RoFormerV2: ``None``
    (rotary positions have no table to overflow). Other transformers models: ``max_position_embeddings`` (minus
    ``pad_token_id + 1`` for RoBERTa-style position ids), ``None`` if the config has none.
    """
    try:
        config = TransformerConfig.from_hf_config(dict(hf_config))
    except ConfigError:
        config = None
    if config is not None:
        return config.max_position_embeddings if config.family == "bert" else None
    limit = hf_config.get("max_position_embeddings")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    if hf_config.get("model_type") in _OFFSET_POSITIONS:
        limit -= int(hf_config.get("pad_token_id") or 0) + 1
    return limit


def check_max_length(model: str | Path, max_length: int, flag: str = "--max-length") -> None:
    """Refuse a ``max_length`` the model cannot take, reading only the checkpoint's config.json (before any work).

    Args:
        model: alias, checkpoint folder or run folder; ``max_length``: tokens per sequence, special tokens included.
    Raises:
        ConfigError: ``max_length < 2``, or above :func:`position_limit` (naming ``flag``, the limit and the file).
    """
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
        raise ConfigError(f"{flag}: expected an integer >= 2, got {max_length!r}")
    folder = resolve_model_path(model)
    limit = position_limit(read_config(folder))
    if limit is not None and max_length > limit:
        raise ConfigError(f"{flag} {max_length}: the model has {limit} positions (max_position_embeddings in "
                          f"{folder / 'config.json'}); use {flag} {limit} or less")
