"""Configuration of the kexue backbone (:class:`kexue.models.Transformer`).

One dataclass covers BERT (absolute positions, post-LN), RoFormer (rotary positions,
https://kexue.fm/archives/8265) and RoFormerV2 (no biases, scale-free norm, https://kexue.fm/archives/8998),
with switches for residual attention (RealFormer, https://kexue.fm/archives/8027), the entropy-invariant
attention scale (https://kexue.fm/archives/8823) and the attention mask kind (bidirectional / causal /
UniLM, https://kexue.fm/archives/6933). Reads and writes Hugging Face ``config.json`` dictionaries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kexue.errors import ConfigError

FAMILIES = ("bert", "roformer", "roformer_v2")
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh")
ATTENTION_SCALES = ("standard", "entropy_invariant")
MASK_KINDS = ("bidirectional", "causal", "unilm")
HF_MODEL_TYPES = {"bert": "bert", "roformer": "roformer", "roformer_v2": "roformer"}
#: The config.json ``model_type`` values kexue's Transformer reads (kexue.models.load_encoder never hands these to
#: transformers.AutoModel: an option kexue refuses is an error, not a silent fallback).
SUPPORTED_MODEL_TYPES = ("bert", "roformer", "roformer_v2", "roformerv2")
AUTOMODEL_HINT = ("for other architectures use transformers.AutoModel.from_pretrained(path), or "
                  "kexue.models.load_encoder(path), which falls back to it for model types kexue does not cover")
_KEXUE_KEYS = ("residual_attention", "attention_scale", "attention_train_length", "attention_mask_kind")
#: Token mixers for ``token_mixing`` (https://kexue.fm/archives/8431): self-attention, FNet's Fourier mixing, gMLP's
#: spatial gating.
TOKEN_MIXERS = ("attention", "fnet", "gmlp")


@dataclass
class TransformerConfig:
    """Hyper-parameters of :class:`kexue.models.Transformer` (Hugging Face field names).

    Attributes:
        family: ``"bert"`` (absolute positions, LayerNorm, biases), ``"roformer"`` (RoPE, LayerNorm, biases)
            or ``"roformer_v2"`` (RoPE, no biases, parameter-free RMS norm).
        vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
        max_position_embeddings, type_vocab_size, layer_norm_eps, pad_token_id, hidden_dropout_prob,
        attention_probs_dropout_prob: as in Hugging Face's BertConfig / RoFormerConfig.
        embedding_size: width of the token embeddings (``None`` = ``hidden_size``); a different value adds a
            projection ``embeddings_project`` (RoFormer small checkpoints).
        rope_theta: RoPE base (10000).
        rotary_value: also rotate the values (a RoFormer option, off in the Chinese checkpoints).
        residual_attention: RealFormer residual attention scores (``A_n = QK^T/√d + A_{n-1}``).
        attention_scale: ``"standard"`` (``1/√d``) or ``"entropy_invariant"`` (``log_{train_length}(n)/√d``,
            ``n`` = number of keys the query may attend).
        attention_train_length: the ``train_length`` of the entropy-invariant scale (512).
        attention_mask_kind: ``"bidirectional"``, ``"causal"`` or ``"unilm"`` (prefix mask from token_type_ids).
        pooler, mlm, nsp: which heads the model has (pooler ``tanh(dense(h_CLS))``, tied masked-LM head,
            next-sentence head; NSP needs the pooler).
        token_mixing: ``None`` (every layer attends) or one entry per layer from ``TOKEN_MIXERS``: ``"attention"``,
            ``"fnet"`` (``Re(FFT2)``, no parameters) or ``"gmlp"`` (spatial gating unit), replacing that layer's
            attention (the MLP-style models of https://kexue.fm/archives/8431). Bidirectional masks only, no
            residual attention.
        token_mixing_seq_len: the ``n`` of gMLP's ``n × n`` token-mixing matrix (default
            ``max_position_embeddings``).
    Raises:
        ConfigError: any invalid value, naming the field.
    """

    family: str = "bert"
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    embedding_size: int | None = None
    rope_theta: float = 10000.0
    rotary_value: bool = False
    residual_attention: bool = False
    attention_scale: str = "standard"
    attention_train_length: int = 512
    attention_mask_kind: str = "bidirectional"
    pooler: bool = True
    mlm: bool = False
    nsp: bool = False
    token_mixing: list[str] | None = None
    token_mixing_seq_len: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field; raises :class:`ConfigError` naming the first bad one."""
        def bad(name: str, want: str) -> ConfigError:
            return ConfigError(f"TransformerConfig.{name}: expected {want}, got {getattr(self, name)!r}")

        if self.family not in FAMILIES:
            raise bad("family", f"one of {FAMILIES}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size", "attention_train_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise bad("num_attention_heads", f"a divisor of hidden_size={self.hidden_size}")
        if self.family != "bert" and self.head_size % 2:
            raise bad("num_attention_heads", f"a head size hidden_size/heads that is even (RoPE); head size "
                      f"would be {self.head_size}")
        if self.hidden_act not in ACTIVATIONS:
            raise bad("hidden_act", f"one of {ACTIVATIONS}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise bad("layer_norm_eps", "a positive number")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise bad(name, "a probability in [0, 1)")
        if self.embedding_size is not None:
            if not isinstance(self.embedding_size, int) or self.embedding_size < 1:
                raise bad("embedding_size", "a positive integer or None")
            if self.family == "bert" and self.embedding_size != self.hidden_size:
                raise bad("embedding_size", f"None or hidden_size={self.hidden_size} for family 'bert'")
        if not (isinstance(self.rope_theta, (int, float)) and self.rope_theta > 0):
            raise bad("rope_theta", "a positive number")
        if self.attention_scale not in ATTENTION_SCALES:
            raise bad("attention_scale", f"one of {ATTENTION_SCALES}")
        if self.attention_mask_kind not in MASK_KINDS:
            raise bad("attention_mask_kind", f"one of {MASK_KINDS}")
        if not isinstance(self.pad_token_id, int) or not 0 <= self.pad_token_id < self.vocab_size:
            raise bad("pad_token_id", f"an id in [0, vocab_size={self.vocab_size})")
        if self.nsp and not self.pooler:
            raise bad("nsp", "False when pooler is False (the NSP head reads the pooler output)")
        if self.token_mixing is not None:
            self._validate_token_mixing(bad)

    def _validate_token_mixing(self, bad) -> None:
        mixing = self.token_mixing
        if (not isinstance(mixing, (list, tuple)) or len(mixing) != self.num_hidden_layers
                or any(m not in TOKEN_MIXERS for m in mixing)):
            raise bad("token_mixing", f"None or a list of {self.num_hidden_layers} entries (one per layer) from "
                      f"{TOKEN_MIXERS}")
        self.token_mixing = list(mixing)
        if any(m != "attention" for m in mixing):
            if self.attention_mask_kind != "bidirectional":
                raise bad("token_mixing", "only 'attention' layers with attention_mask_kind "
                          f"{self.attention_mask_kind!r} (FNet and gMLP mixing are bidirectional)")
            if self.residual_attention:
                raise bad("token_mixing", "only 'attention' layers with residual_attention (the score chain "
                          "needs every layer's attention)")
        n = self.token_mixing_seq_len
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise bad("token_mixing_seq_len", "None or a positive integer")

    def token_mixer(self, layer: int) -> str:
        """The token mixer of layer ``layer`` (``"attention"`` unless ``token_mixing`` says otherwise)."""
        return "attention" if self.token_mixing is None else self.token_mixing[layer]

    # ------------------------------------------------------------------ derived
    @property
    def head_size(self) -> int:
        """``hidden_size // num_attention_heads``."""
        return self.hidden_size // self.num_attention_heads

    @property
    def embedding_width(self) -> int:
        """The token-embedding width: ``embedding_size`` or ``hidden_size``."""
        return self.embedding_size or self.hidden_size

    @property
    def use_bias(self) -> bool:
        """Whether dense layers have biases (False only for RoFormerV2)."""
        return self.family != "roformer_v2"

    @property
    def norm_type(self) -> str:
        """``"layer_norm"`` (BERT, RoFormer) or ``"rms_norm"`` (RoFormerV2's scale-free norm)."""
        return "rms_norm" if self.family == "roformer_v2" else "layer_norm"

    @property
    def uses_rope(self) -> bool:
        """Whether attention applies rotary position embeddings (RoFormer families)."""
        return self.family != "bert"

    # ------------------------------------------------------------------ HF conversion
    @classmethod
    def from_hf_config(cls, config: dict[str, Any], **overrides: Any) -> "TransformerConfig":
        """Build from a Hugging Face ``config.json`` dictionary.

        ``model_type`` ``"bert"`` -> family bert; ``"roformer"`` -> roformer, or roformer_v2 when the config
        carries junnyu's RoFormerV2 fields (``norm_type`` other than ``"layer_norm"`` and ``use_bias: false``);
        ``"roformer_v2"`` / ``"roformerv2"`` -> roformer_v2. kexue's own switches are read from the ``"kexue"``
        entry that :meth:`to_hf_config` writes. ``overrides`` replace fields after reading.

        Raises:
            ConfigError: unknown ``model_type`` (listing the supported ones and how to use
                ``transformers.AutoModel``), unsupported options (relative position embeddings, cross-attention,
                a half-V2 RoFormer), or invalid values.
        """
        model_type = config.get("model_type")
        if model_type == "bert":
            family = "bert"
            pos = config.get("position_embedding_type", "absolute")
            if pos not in (None, "absolute"):
                raise ConfigError(f"config.json position_embedding_type={pos!r} is not supported by kexue's "
                                  f"Transformer (only 'absolute'); {AUTOMODEL_HINT}")
        elif model_type == "roformer":
            norm_type = config.get("norm_type", "layer_norm")
            use_bias = config.get("use_bias", True)
            if norm_type == "layer_norm" and use_bias:
                family = "roformer"
            elif norm_type != "layer_norm" and not use_bias:
                family = "roformer_v2"
            else:
                raise ConfigError(f"config.json: RoFormer with norm_type={norm_type!r} and use_bias={use_bias!r} "
                                  "is neither RoFormer (layer_norm, biases) nor RoFormerV2 (rms_norm, no biases)")
        elif model_type in ("roformer_v2", "roformerv2"):
            family = "roformer_v2"
        else:
            raise ConfigError(
                f"config.json model_type={model_type!r} is not supported by kexue's Transformer; supported "
                f"model_type values: 'bert' (family bert), 'roformer' (families roformer and roformer_v2); "
                + AUTOMODEL_HINT)
        if config.get("add_cross_attention"):
            raise ConfigError("config.json add_cross_attention=true is not supported (encoder only); " + AUTOMODEL_HINT)
        kwargs: dict[str, Any] = {"family": family}
        names = {f.name for f in fields(cls)}
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id",
                     "hidden_dropout_prob", "attention_probs_dropout_prob", "embedding_size", "rope_theta",
                     "rotary_value"):
            if config.get(name) is not None:
                kwargs[name] = config[name]
        if config.get("is_decoder"):
            kwargs["attention_mask_kind"] = "causal"
        kexue = config.get("kexue") or {}
        for name, value in kexue.items():
            if name not in names:
                raise ConfigError(f"config.json kexue.{name}: unknown kexue option (known: {sorted(names)})")
            kwargs[name] = value
        kwargs.update(overrides)
        if kwargs.get("embedding_size") == kwargs.get("hidden_size", cls.hidden_size):
            kwargs["embedding_size"] = None
        return cls(**kwargs)

    def to_hf_config(self) -> dict[str, Any]:
        """A Hugging Face ``config.json`` dictionary (``BertConfig`` / ``RoFormerConfig`` fields; RoFormerV2 in
        junnyu's layout: ``model_type="roformer"``, ``norm_type="rms_norm"``, ``use_bias=false``), with kexue's
        switches and head flags under ``"kexue"`` and ``architectures`` naming the matching transformers class."""
        d: dict[str, Any] = {
            "model_type": HF_MODEL_TYPES[self.family],
            "architectures": [self._architecture()],
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings, "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps, "pad_token_id": self.pad_token_id,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "initializer_range": 0.02,
        }
        if self.family == "bert":
            d["position_embedding_type"] = "absolute"
        else:
            d["embedding_size"] = self.embedding_width
            d["rotary_value"] = self.rotary_value
            if self.rope_theta != 10000.0:
                d["rope_theta"] = self.rope_theta
        if self.family == "roformer_v2":
            d["norm_type"] = "rms_norm"
            d["use_bias"] = False
        if self.attention_mask_kind == "causal":
            d["is_decoder"] = True
        all_fields = asdict(self)
        d["kexue"] = {k: all_fields[k] for k in _KEXUE_KEYS + ("pooler", "mlm", "nsp")}
        if self.token_mixing is not None:  # written only when set, so attention-only configs are unchanged
            d["kexue"].update(token_mixing=list(self.token_mixing), token_mixing_seq_len=self.token_mixing_seq_len)
        return d

    def _architecture(self) -> str:
        if self.family == "bert":
            if self.mlm and self.nsp:
                return "BertForPreTraining"
            if self.mlm:
                return "BertForMaskedLM"
            if self.nsp:
                return "BertForNextSentencePrediction"
            return "BertModel"
        return "RoFormerForMaskedLM" if self.mlm else "RoFormerModel"
