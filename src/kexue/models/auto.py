"""Load any encoder: kexue's Transformer when the checkpoint is a supported family, else transformers.AutoModel."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.models.checkpoint import read_config
from kexue.models.config import TransformerConfig
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


def load_encoder(name_or_path: str | Path, **kwargs) -> tuple[nn.Module, str]:
    """Load an encoder for any Hugging Face checkpoint folder or alias.

    Returns:
        ``(module, kind)``: ``kind == "kexue"`` with a :class:`Transformer` when ``config.json`` describes a
        supported family (bert, roformer, roformer_v2); otherwise ``kind == "transformers"`` with an
        :class:`HFEncoder` over ``transformers.AutoModel.from_pretrained``. Both forward to a TransformerOutput.
        ``kwargs`` go to :meth:`Transformer.from_pretrained`.
    Raises:
        ConfigError: unknown alias / missing folder; CheckpointError: a supported checkpoint that does not load.
    """
    folder = resolve_model_path(name_or_path)
    try:
        TransformerConfig.from_hf_config(read_config(folder))
    except ConfigError:
        from transformers import AutoModel

        return HFEncoder(AutoModel.from_pretrained(str(folder))), "transformers"
    return Transformer.from_pretrained(folder, **kwargs), "kexue"
