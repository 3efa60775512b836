"""kexue.models: the Transformer backbone, its config and heads, checkpoint reading/writing, aliases."""

from kexue.models.auto import HFEncoder, load_encoder
from kexue.models.config import TransformerConfig
from kexue.hub import resolve_model_path
from kexue.models.outputs import TransformerOutput
from kexue.models.transformer import Transformer
from kexue.models.widening import widen_transformer

__all__ = ["HFEncoder", "Transformer", "TransformerConfig", "TransformerOutput", "load_encoder",
           "resolve_model_path", "widen_transformer"]
