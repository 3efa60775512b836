"""Building blocks: attention, rotary embeddings, norms, masks, pooling, GlobalPointer heads, CRF."""

from kexue.nn.attention import MultiHeadAttention, entropy_invariant_factor
from kexue.nn.crf import CRF
from kexue.nn.global_pointer import EfficientGlobalPointer, GlobalPointer
from kexue.nn.masks import build_attention_mask, causal_mask, unilm_mask
from kexue.nn.mixers import FNetMixing, SpatialGatingUnit
from kexue.nn.norms import ScaleFreeRMSNorm
from kexue.nn.pooling import POOLING_MODES, Pooling, pool
from kexue.nn.rotary import RotaryEmbedding, apply_rotary, rotary_tables

__all__ = ["CRF", "EfficientGlobalPointer", "FNetMixing", "GlobalPointer", "MultiHeadAttention", "POOLING_MODES", "Pooling",
           "RotaryEmbedding", "ScaleFreeRMSNorm", "SpatialGatingUnit", "apply_rotary", "build_attention_mask", "causal_mask",
           "entropy_invariant_factor", "pool", "rotary_tables", "unilm_mask"]
