"""Checkpoint I/O in the Hugging Face layout, by an explicit key map per family.

Reads ``config.json`` + ``model.safetensors`` / ``pytorch_model.bin`` / sharded indexes
(``model.safetensors.index.json``, ``pytorch_model.bin.index.json``); every missing, unexpected or mis-shaped
key raises :class:`kexue.errors.CheckpointError` unless allowed by an fnmatch glob. Writes folders that
transformers' BertModel / BertForPreTraining / BertForMaskedLM / RoFormerModel / RoFormerForMaskedLM load.

Key map (kexue name -> Hugging Face name, base-model keys under ``bert.`` / ``roformer.`` when heads exist):
``layers.{i}.attention.qkv`` <- ``encoder.layer.{i}.attention.self.{query,key,value}`` (concatenated rows),
``layers.{i}.attention.output`` <- ``...attention.output.dense``, ``layers.{i}.attention_norm`` <-
``...attention.output.LayerNorm``, ``layers.{i}.intermediate`` <- ``...intermediate.dense``,
``layers.{i}.output`` <- ``...output.dense``, ``layers.{i}.output_norm`` <- ``...output.LayerNorm``,
``embeddings.norm`` <- ``embeddings.LayerNorm``, ``mlm_head.{dense,norm,bias}`` <-
``cls.predictions.{transform.dense,transform.LayerNorm,bias}``, ``nsp_head`` <- ``cls``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from kexue.errors import CheckpointError, ConfigError
from kexue.models.config import TransformerConfig
from kexue.nn.rotary import rotary_tables

HEAD_NAMES = ("pooler", "mlm", "nsp")
_BASE_PREFIX = {"bert": "bert.", "roformer": "roformer.", "roformer_v2": "roformer."}
_RULES = [
    (re.compile(r"^embeddings\.norm\.(.*)$"), r"embeddings.LayerNorm.\1"),
    (re.compile(r"^layers\.(\d+)\.attention\.output\.(.*)$"), r"encoder.layer.\1.attention.output.dense.\2"),
    (re.compile(r"^layers\.(\d+)\.attention_norm\.(.*)$"), r"encoder.layer.\1.attention.output.LayerNorm.\2"),
    (re.compile(r"^layers\.(\d+)\.intermediate\.(.*)$"), r"encoder.layer.\1.intermediate.dense.\2"),
    (re.compile(r"^layers\.(\d+)\.output\.(.*)$"), r"encoder.layer.\1.output.dense.\2"),
    (re.compile(r"^layers\.(\d+)\.output_norm\.(.*)$"), r"encoder.layer.\1.output.LayerNorm.\2"),
    (re.compile(r"^mlm_head\.dense\.(.*)$"), r"cls.predictions.transform.dense.\1"),
    (re.compile(r"^mlm_head\.norm\.(.*)$"), r"cls.predictions.transform.LayerNorm.\1"),
    (re.compile(r"^mlm_head\.bias$"), r"cls.predictions.bias"),
    (re.compile(r"^nsp_head\.(.*)$"), r"cls.\1"),
]
_QKV = re.compile(r"^layers\.(\d+)\.attention\.qkv\.(weight|bias)$")


def hf_names(name: str, prefix: str) -> tuple[str, ...]:
    """Hugging Face key(s) of the kexue parameter ``name`` (three keys for the fused ``qkv``, concatenated)."""
    m = _QKV.match(name)
    if m:
        i, kind = m.groups()
        return tuple(f"{prefix}encoder.layer.{i}.attention.self.{part}.{kind}" for part in ("query", "key", "value"))
    for pattern, repl in _RULES:
        if pattern.match(name):
            out = pattern.sub(repl, name)
            return (out if out.startswith("cls.") else prefix + out,)
    return (prefix + name,)


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


# ---------------------------------------------------------------------- reading files
def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of ``folder`` as a dict; CheckpointError if absent or not valid JSON."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: config.json not found (expected a Hugging Face checkpoint folder)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises SafetensorError / OSError on truncated or corrupt files
        raise CheckpointError(f"{path}: cannot read safetensors file (truncated or corrupt?): {err}") from err


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read PyTorch weights file (truncated or corrupt?): {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in ``folder`` (single file or shards), keyed by Hugging Face names.

    Raises:
        CheckpointError: no weights file, a shard missing, or a file that cannot be read (naming it).
    """
    for index_name, reader in (("model.safetensors.index.json", _read_safetensors),
                               ("pytorch_model.bin.index.json", _read_bin)):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as err:
                raise CheckpointError(f"{index}: not a valid shard index ({err!r})") from err
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                if not (folder / shard).is_file():
                    raise CheckpointError(f"{index}: shard {shard} listed but not found in {folder}")
                state.update(reader(folder / shard))
            absent = sorted(set(weight_map) - set(state))
            if absent:
                raise CheckpointError(f"{index}: keys listed in the index are absent from the shards",
                                      missing=absent)
            return state
    if (folder / "model.safetensors").is_file():
        return _read_safetensors(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return _read_bin(folder / "pytorch_model.bin")
    raise CheckpointError(f"{folder}: no weights found (expected model.safetensors, pytorch_model.bin or a "
                          "sharded index model.safetensors.index.json / pytorch_model.bin.index.json)")


# ---------------------------------------------------------------------- mapping
def infer_heads(state: dict[str, torch.Tensor], family: str) -> tuple[str, ...]:
    """Heads whose weights ``state`` holds: ``pooler`` (``*pooler.dense.*``), ``mlm`` (``cls.predictions.*``),
    ``nsp`` (``cls.seq_relationship.*``)."""
    prefix = _BASE_PREFIX[family]
    heads = []
    if any(k.startswith(("pooler.", prefix + "pooler.")) for k in state):
        heads.append("pooler")
    if any(k.startswith("cls.predictions.") for k in state):
        heads.append("mlm")
    if any(k.startswith("cls.seq_relationship.") for k in state):
        heads.append("nsp")
    return tuple(heads)


def _sinusoid_table(config: TransformerConfig, rows: int) -> torch.Tensor:
    cos, sin = rotary_tables(rows, config.head_size, config.rope_theta)
    return torch.cat((sin, cos), dim=-1)


def convert_from_hf(
    model: torch.nn.Module, state: dict[str, torch.Tensor], *, allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (), source: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Map a Hugging Face state dict onto ``model``'s parameter names; checks everything.

    Returns the kexue state dict (missing-but-allowed parameters are left out). Derived keys are verified,
    not dropped: position-id buffers are ignored, RoFormer's ``encoder.embed_positions.weight`` must equal the
    sinusoid table, a stored ``cls.predictions.decoder.weight`` must equal the word embeddings (tied) and
    ``cls.predictions.decoder.bias`` must equal ``cls.predictions.bias``.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and ``{key: (expected, found)}`` shape mismatches.
    """
    config: TransformerConfig = model.config
    base = _BASE_PREFIX[config.family]
    prefix = base if any(k.startswith(base) for k in state) else ""
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for name, tensor in expected.items():
        keys = hf_names(name, prefix)
        absent = [k for k in keys if k not in state]
        if absent:
            if not all(_matches(k, allow_missing) or _matches(name, allow_missing) for k in absent):
                missing.extend(absent)
            continue
        part_shape = (tensor.shape[0] // len(keys),) + tuple(tensor.shape[1:])
        bad = False
        for k in keys:
            used.add(k)
            if tuple(state[k].shape) != part_shape:
                mismatched[k] = (part_shape, tuple(state[k].shape))
                bad = True
        if not bad:
            out[name] = torch.cat([state[k] for k in keys], dim=0) if len(keys) > 1 else state[k]
    problems: list[str] = []
    word_key = prefix + "embeddings.word_embeddings.weight"
    for key in (prefix + "embeddings.position_ids", prefix + "embeddings.token_type_ids"):
        if key in state:
            used.add(key)  # non-persistent index buffers of transformers' embeddings, not weights
    table_key = prefix + "encoder.embed_positions.weight"
    if table_key in state and config.uses_rope:
        used.add(table_key)
        table = state[table_key]
        if table.dim() != 2 or table.shape[1] != config.head_size:
            mismatched[table_key] = ((table.shape[0] if table.dim() else 0, config.head_size), tuple(table.shape))
        elif not torch.allclose(table.float(), _sinusoid_table(config, table.shape[0]), atol=1e-4):
            problems.append(f"{table_key} is not RoFormer's sinusoid table for head size {config.head_size} "
                            f"and rope_theta {config.rope_theta}")
    if "cls.predictions.decoder.weight" in state and config.mlm:
        used.add("cls.predictions.decoder.weight")
        dec = state["cls.predictions.decoder.weight"]
        if word_key in state and (dec.shape != state[word_key].shape or not torch.equal(dec, state[word_key])):
            problems.append("cls.predictions.decoder.weight differs from the word embeddings; kexue's MLM head is "
                            "tied to the embeddings (as in the BERT/RoFormer checkpoints)")
    if "cls.predictions.decoder.bias" in state and config.mlm and config.use_bias:
        used.add("cls.predictions.decoder.bias")
        if "cls.predictions.bias" in state and not torch.equal(state["cls.predictions.decoder.bias"],
                                                               state["cls.predictions.bias"]):
            problems.append("cls.predictions.decoder.bias differs from cls.predictions.bias")
    unexpected = [k for k in state if k not in used and not _matches(k, allow_unexpected)]
    if missing or unexpected or mismatched or problems:
        head = f"cannot load {source} into kexue Transformer (family {config.family!r})"
        hint = _hint(config, missing, unexpected)
        raise CheckpointError("; ".join([head] + problems + ([hint] if hint else [])),
                              missing=missing, unexpected=unexpected, mismatched=mismatched)
    return out


def _hint(config: TransformerConfig, missing: list[str], unexpected: list[str]) -> str:
    bias_or_norm = [k for k in missing if k.endswith(".bias") or ".LayerNorm." in k]
    if config.family == "roformer" and missing and len(bias_or_norm) == len(missing):
        return ("the checkpoint has no biases / LayerNorm weights: it looks like a RoFormerV2 checkpoint offered "
                "as RoFormer; its config.json should say norm_type='rms_norm' and use_bias=false")
    extra = [k for k in unexpected if k.endswith(".bias") or ".LayerNorm." in k]
    if config.family == "roformer_v2" and extra:
        return ("the checkpoint has biases / LayerNorm weights: it looks like a RoFormer (v1) checkpoint offered "
                "as RoFormerV2")
    if missing and all(k.startswith("cls.") or ".pooler." in k or k.startswith("pooler.") for k in missing):
        return "to start a head from scratch pass allow_missing=('cls.*',) (or 'pooler.*')"
    return ""


def convert_to_hf(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights as a Hugging Face state dict (fused qkv split back into query/key/value)."""
    config: TransformerConfig = model.config
    prefix = _BASE_PREFIX[config.family] if (config.mlm or config.nsp) else ""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        keys = hf_names(name, prefix)
        parts = tensor.chunk(len(keys), dim=0) if len(keys) > 1 else (tensor,)
        for k, part in zip(keys, parts):
            out[k] = part.detach().contiguous().clone()
    if config.uses_rope:
        out[prefix + "encoder.embed_positions.weight"] = _sinusoid_table(config, config.max_position_embeddings)
    if config.mlm and not config.use_bias:
        out["cls.predictions.decoder.weight"] = out[prefix + "embeddings.word_embeddings.weight"].clone()
    return out


# ---------------------------------------------------------------------- entry points
def load_pretrained(cls, path_or_alias, *, allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                    heads: Sequence[str] | None = None, dtype: torch.dtype | None = None,
                    config_overrides: dict[str, Any] | None = None):
    """Implementation of :meth:`kexue.models.Transformer.from_pretrained` (see there)."""
    from kexue.hub import resolve_model_path

    folder = resolve_model_path(path_or_alias)
    hf_config = read_config(folder)
    try:
        config = TransformerConfig.from_hf_config(hf_config)
    except ConfigError as err:
        raise ConfigError(f"{folder / 'config.json'}: {err}") from err
    state = read_state_dict(folder)
    if heads is None:
        heads = infer_heads(state, config.family)
    unknown = [h for h in heads if h not in HEAD_NAMES]
    if unknown:
        raise ConfigError(f"heads: unknown head(s) {unknown}; choose from {HEAD_NAMES}")
    overrides = {h: (h in heads) for h in HEAD_NAMES}
    overrides.update(config_overrides or {})
    fields = {k: v for k, v in vars(config).items()}
    fields.update(overrides)
    config = TransformerConfig(**fields)
    model = cls(config)
    mapped = convert_from_hf(model, state, allow_missing=tuple(allow_missing),
                             allow_unexpected=tuple(allow_unexpected), source=str(folder))
    model.load_state_dict(mapped, strict=False)
    if dtype is not None:
        model = model.to(dtype)
    model.eval()
    return model


def save_pretrained(model: torch.nn.Module, path, *, safe_serialization: bool = True) -> Path:
    """Implementation of :meth:`kexue.models.Transformer.save_pretrained`: config.json + weights; returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config.to_hf_config(), indent=2) + "\n", encoding="utf-8")
    state = convert_to_hf(model)
    if safe_serialization:
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder
