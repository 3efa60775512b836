"""The kexue backbone: one Transformer encoder for BERT, RoFormer and RoFormerV2.

Families differ by small hooks (position embeddings vs RoPE, LayerNorm vs scale-free RMS norm, biases);
switches add RealFormer residual attention scores (https://kexue.fm/archives/8027), the entropy-invariant
attention scale (https://kexue.fm/archives/8823) and causal / UniLM masks (https://kexue.fm/archives/6933).
RoPE: https://kexue.fm/archives/8265; RoFormerV2: https://kexue.fm/archives/8998.

Module names (for peft LoRA ``target_modules``): ``layers.{i}.attention.qkv`` (fused query/key/value Linear
``H -> 3H``), ``layers.{i}.attention.output`` (``H -> H``), ``layers.{i}.intermediate`` (``H -> I``),
``layers.{i}.output`` (``I -> H``); e.g. ``LoraConfig(target_modules=["qkv"])`` adapts all attention inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.models.config import TransformerConfig
from kexue.models.heads import MaskedLMHead, NSPHead, Pooler, activation
from kexue.models.outputs import TransformerOutput
from kexue.nn.attention import MultiHeadAttention, entropy_invariant_factor
from kexue.nn.fused import FUSED_ACTIVATIONS, fused_linear
from kexue.nn.masks import MASK_KINDS, build_attention_mask, key_counts, mask_to_bias
from kexue.nn.mixers import FNetTokenMixer, GatedTokenMixer
from kexue.nn.norms import make_norm
from kexue.nn.rotary import rotary_tables


def incremental_mask(kind: str, keep: torch.Tensor, types: torch.Tensor, past: int) -> torch.Tensor | None:
    """The ``kind`` mask of the last ``L = K - past`` queries over all ``K`` keys: bool ``[B|1, 1, L|1, K]`` / None.

    ``keep`` / ``types``: ``[B, K]`` key padding (1 = real) and segment ids of all positions, cached ones first.
    Rows equal the last ``L`` rows of :func:`kexue.nn.masks.build_attention_mask` over the whole sequence.
    """
    total = keep.shape[1]
    mask = None if bool(keep.bool().all()) else keep.bool()[:, None, None, :]
    structural = None
    if kind == "causal":
        rows = torch.arange(past, total, device=keep.device)[:, None]
        structural = (torch.arange(total, device=keep.device)[None, :] <= rows)[None, None]
    elif kind == "unilm":
        c = types.long().cumsum(dim=1)
        structural = (c[:, None, :] <= c[:, past:, None])[:, None]
    if structural is None:
        return mask
    return structural if mask is None else mask & structural


class Embeddings(nn.Module):
    """Token (+ absolute position for BERT) + segment embeddings, then norm and dropout: ``[B, L] -> [B, L, E]``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        width = config.embedding_width
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = (nn.Embedding(config.max_position_embeddings, width)
                                    if config.family == "bert" else None)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.norm = make_norm(config.norm_type, width, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids`` / ``token_type_ids`` / ``position_ids`` (default ``0..L-1``) ``[B, L]`` -> ``[B, L, E]``."""
        x = self.word_embeddings(input_ids)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        if self.position_embeddings is not None and position_ids is not None:
            x = x + self.position_embeddings(position_ids)
        elif self.position_embeddings is not None:
            x = x + self.position_embeddings.weight[: input_ids.shape[1]]
        return self.dropout(self.norm(x))


class TransformerBlock(nn.Module):
    """Post-norm block: ``x = norm(x + α·drop(MHA(x)))``, ``x = norm(x + α·drop(W2 act(W1 x)))``.

    ``config.token_mixer(layer_index)`` other than ``"attention"`` puts an FNet or gMLP token mixer
    (:mod:`kexue.nn.mixers`) in the attention slot, under the same name ``attention``.
    """

    def __init__(self, config: TransformerConfig, layer_index: int = 0) -> None:
        super().__init__()
        bias = config.use_bias
        mixer = config.token_mixer(layer_index)
        if mixer == "attention":
            self.attention = MultiHeadAttention(config.hidden_size, config.num_attention_heads, bias=bias,
                                                dropout=config.attention_probs_dropout_prob,
                                                rotary_value=config.rotary_value)
        elif mixer == "fnet":
            self.attention = FNetTokenMixer()
        else:
            self.attention = GatedTokenMixer(config.hidden_size,
                                             config.token_mixing_seq_len or config.max_position_embeddings, bias)
        self.attention_norm = make_norm(config.norm_type, config.hidden_size, config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)
        self.output_norm = make_norm(config.norm_type, config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.act = activation(config.hidden_act)
        self.act_name = config.hidden_act

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, rope, scale_factor, prev_scores,
                need_scores: bool, alpha: float = 1.0, kv_cache=None,
                layer_index: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``[B, L, H]`` -> ``(x', raw attention scores or None)``; see :class:`MultiHeadAttention`
        (``kv_cache`` / ``layer_index``: its key/value cache; attention blocks only).

        In eval mode with ``alpha = 1`` (no dropout, plain residuals) the residual adds and the activation run
        as post-ops of the projections' GEMMs (:func:`kexue.nn.fused.fused_linear`); same values otherwise.
        """
        cache = {} if kv_cache is None else {"kv_cache": kv_cache, "layer_index": layer_index}
        if not self.training and alpha == 1.0 and self.act_name in FUSED_ACTIVATIONS:
            x, scores = self.attention(x, bias, rope, scale_factor, prev_scores, need_scores, residual=x, **cache)
            x = self.attention_norm(x)
            h = fused_linear(self.intermediate, x, activation=self.act_name)
            return self.output_norm(fused_linear(self.output, h, residual=x)), scores
        a, scores = self.attention(x, bias, rope, scale_factor, prev_scores, need_scores, **cache)
        a = self.dropout(a)
        x = self.attention_norm(x + (a if alpha == 1.0 else alpha * a))
        f = self.dropout(self.output(self.act(self.intermediate(x))))
        x = self.output_norm(x + (f if alpha == 1.0 else alpha * f))
        return x, scores


class Transformer(nn.Module):
    """One configurable Transformer encoder (BERT / RoFormer / RoFormerV2) with optional heads.

    Attributes:
        config: the :class:`TransformerConfig`.
        embeddings, embeddings_project (or ``None``), layers (``nn.ModuleList`` of :class:`TransformerBlock`),
        pooler, mlm_head, nsp_head (each ``None`` unless configured).
        residual_alpha: residual warm-up factor α of RoFormerV2 training (``x = norm(x + α F(x))``); 1 = off.

    Raises:
        ConfigError: invalid config; inputs of the wrong rank/dtype or longer than the position table.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.residual_alpha = 1.0
        self.embeddings = Embeddings(config)
        self.embeddings_project = (nn.Linear(config.embedding_width, config.hidden_size, bias=config.use_bias)
                                   if config.embedding_width != config.hidden_size else None)
        self.layers = nn.ModuleList(TransformerBlock(config, i) for i in range(config.num_hidden_layers))
        self.pooler = Pooler(config.hidden_size) if config.pooler else None
        self.mlm_head = MaskedLMHead(config) if config.mlm else None
        self.nsp_head = NSPHead(config.hidden_size) if config.nsp else None
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = 0.02
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word-embedding table ``nn.Embedding(vocab_size, embedding_width)`` (tied to the MLM decoder)."""
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attention_scores: bool = False,
        mask_kind: str | None = None,
        *,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        logits_to_keep: int | None = None,
    ) -> TransformerOutput:
        """Encode a batch.

        Args:
            input_ids: ``[B, L]`` long token ids.
            attention_mask: ``[B, L]`` (1 = real token, 0 = padding) or ``None`` (no padding).
            token_type_ids: ``[B, L]`` segment ids or ``None`` (all 0); the UniLM mask reads them.
            output_hidden_states: also return all ``num_layers + 1`` hidden states (index 0 = embeddings).
            output_attention_scores: also return each layer's raw pre-softmax scores ``[B, h, L, L]`` (without
                the mask; with RealFormer, accumulated over layers).
            mask_kind: ``"bidirectional"`` / ``"causal"`` / ``"unilm"``, overriding ``config.attention_mask_kind``.
            position_ids: ``[B, L]`` long positions (absolute embeddings / RoPE angles), default ``T..T+L-1`` with
                ``T`` cached positions; lets right-padded rows continue at their own length when decoding.
            past_key_values: a key/value cache (:class:`kexue.generation.KVCache`: ``length``,
                ``append_inputs(attention_mask, token_type_ids)`` and ``update(layer_index, k, v)``), extended in
                place: ``input_ids`` are the ``L`` positions after its ``T`` cached ones; ``attention_mask`` and
                ``token_type_ids`` cover these ``L`` positions only (the cache keeps the earlier ones, so the
                UniLM / causal masks see all ``T + L``). Needs attention (not FNet/gMLP) in every layer.
            logits_to_keep: ``None`` = MLM logits at every position; ``k > 0`` = at the last ``k`` positions only;
                ``0`` = no MLM logits (decoding computes them where it needs them).
        Returns:
            :class:`TransformerOutput` (last_hidden_state ``[B, L, H]``; pooler_output, mlm_logits, nsp_logits
            when the model has those heads).

        Without ``position_ids`` and ``past_key_values`` the computation is exactly the plain encoder's.
        """
        cfg = self.config
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise ConfigError(f"input_ids must be a [batch, seq_len] integer tensor, got {tuple(input_ids.shape)} "
                              f"{input_ids.dtype}")
        batch, length = input_ids.shape
        incremental = position_ids is not None or past_key_values is not None
        if cfg.family == "bert" and not incremental and length > cfg.max_position_embeddings:
            raise ConfigError(f"sequence length {length} exceeds max_position_embeddings="
                              f"{cfg.max_position_embeddings}")
        kind = mask_kind or cfg.attention_mask_kind
        device = input_ids.device
        if incremental:
            x, bias, rope, scale_factor = self._incremental_inputs(input_ids, attention_mask, token_type_ids,
                                                                   position_ids, past_key_values, kind)
        else:
            x = self.embeddings(input_ids, token_type_ids)
            if self.embeddings_project is not None:
                x = self.embeddings_project(x)
            mask = build_attention_mask(kind, attention_mask, token_type_ids, length, device)
            bias = mask_to_bias(mask, x.dtype)
            rope = rotary_tables(length, cfg.head_size, cfg.rope_theta, device=device) if cfg.uses_rope else None
            scale_factor = None
            if cfg.attention_scale == "entropy_invariant":
                scale_factor = entropy_invariant_factor(key_counts(mask, batch, length, device),
                                                        cfg.attention_train_length)
        hidden_states = [x] if output_hidden_states else None
        all_scores = [] if output_attention_scores else None
        need_scores = output_attention_scores or cfg.residual_attention
        prev = None
        for index, layer in enumerate(self.layers):
            x, scores = layer(x, bias, rope, scale_factor, prev, need_scores, self.residual_alpha,
                              past_key_values, index)
            if cfg.residual_attention:
                prev = scores
            if all_scores is not None:
                all_scores.append(scores)
            if hidden_states is not None:
                hidden_states.append(x)
        pooled = self.pooler(x) if self.pooler is not None else None
        lm_input = x if logits_to_keep is None else x[:, x.shape[1] - logits_to_keep:]
        return TransformerOutput(
            last_hidden_state=x,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            pooler_output=pooled,
            mlm_logits=(self.mlm_head(lm_input, self.embeddings.word_embeddings.weight)
                        if self.mlm_head is not None and logits_to_keep != 0 else None),
            nsp_logits=self.nsp_head(pooled) if self.nsp_head is not None else None,
            attention_scores=tuple(all_scores) if all_scores is not None else None,
        )

    def _incremental_inputs(self, input_ids, attention_mask, token_type_ids, position_ids, cache, kind):
        """Embeddings, bias, RoPE tables ``[B, 1, L, d/2]`` and scale for explicit positions and/or a KV cache."""
        cfg = self.config
        batch, length = input_ids.shape
        device = input_ids.device
        if kind not in MASK_KINDS:
            raise ConfigError(f"attention mask kind must be one of {MASK_KINDS}, got {kind!r}")
        if cache is not None and not all(isinstance(layer.attention, MultiHeadAttention) for layer in self.layers):
            raise ConfigError("a key/value cache needs attention in every layer (token_mixers FNet/gMLP have none)")
        past = 0 if cache is None else cache.length
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=device).expand(batch, length)
        if cfg.family == "bert" and length and int(position_ids.max()) >= cfg.max_position_embeddings:
            raise ConfigError(f"position {int(position_ids.max())} exceeds max_position_embeddings="
                              f"{cfg.max_position_embeddings}")
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        keep = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        if cache is not None:
            keep, types = cache.append_inputs(keep, types)
        mask = incremental_mask(kind, keep, types, past)
        bias = mask_to_bias(mask, x.dtype)
        rope = None
        if cfg.uses_rope:
            cos, sin = rotary_tables(batch * length, cfg.head_size, cfg.rope_theta,
                                     positions=position_ids.reshape(-1))
            rope = (cos.view(batch, 1, length, -1), sin.view(batch, 1, length, -1))
        scale_factor = None
        if cfg.attention_scale == "entropy_invariant":
            scale_factor = entropy_invariant_factor(key_counts(mask, batch, keep.shape[1], device),
                                                    cfg.attention_train_length)
        return x, bias, rope, scale_factor

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(
        cls,
        path_or_alias: str | Path,
        *,
        allow_missing: Iterable[str] = (),
        allow_unexpected: Iterable[str] = (),
        heads: Sequence[str] | None = None,
        dtype: torch.dtype | None = None,
        **config_overrides,
    ) -> "Transformer":
        """Load a Hugging Face checkpoint folder (or an alias such as ``"minilm"``).

        Reads ``config.json`` and ``model.safetensors`` / ``pytorch_model.bin`` / a sharded index, maps the keys
        with the family's explicit key map (:mod:`kexue.models.checkpoint`) and loads every tensor.

        Args:
            path_or_alias: folder or alias (:func:`kexue.hub.resolve_model_path`).
            allow_missing: fnmatch globs (over Hugging Face key names) of keys that may be absent and stay
                freshly initialised, e.g. ``("cls.*",)`` for a new MLM head.
            allow_unexpected: globs of checkpoint keys that may be ignored.
            heads: head names to build (subset of ``"pooler"``, ``"mlm"``, ``"nsp"``); ``None`` = the heads
                whose weights the checkpoint has.
            dtype: cast the loaded model to this dtype.
            config_overrides: TransformerConfig fields to override (e.g. ``residual_attention=True``).
        Returns:
            the model in eval mode (call ``.train()`` to fine-tune).
        Raises:
            CheckpointError: missing / unexpected / mis-shaped keys, unreadable or corrupt weight files.
            ConfigError: unknown alias, unsupported ``model_type`` (lists the families, points to AutoModel).
        """
        from kexue.models.checkpoint import load_pretrained

        return load_pretrained(cls, path_or_alias, allow_missing=allow_missing, allow_unexpected=allow_unexpected,
                               heads=heads, dtype=dtype, config_overrides=config_overrides)

    def save_pretrained(self, path: str | Path, *, safe_serialization: bool = True) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``) in the Hugging Face layout.

        transformers' BertModel / BertForPreTraining / BertForMaskedLM / RoFormerModel / RoFormerForMaskedLM
        load the folder with identical outputs (RoFormerV2 uses junnyu's layout). Returns the folder.
        """
        from kexue.models.checkpoint import save_pretrained

        return save_pretrained(self, path, safe_serialization=safe_serialization)
