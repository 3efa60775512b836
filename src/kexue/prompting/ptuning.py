"""P-tuning: a template of trainable prompt tokens, with the model truly frozen.

"P-tuning:自动构建模版,释放语言模型潜能", https://kexue.fm/archives/8295 (Liu et al., "GPT Understands, Too",
arXiv 2103.10385; reference code bojone/P-tuning). The template is a :class:`~kexue.prompting.ClozePattern` whose
``{p}`` slots hold prompt tokens (reference layout ``[CLS] u1..u4 [MASK] u5..u8 text [SEP]``,
:data:`REFERENCE_TEMPLATE`); the prediction is PET's verbalizer score at the mask.

**Freezing (how).** The prompt rows are not trained inside the embedding matrix. The word-embedding weight of
the backbone is reparametrised (``torch.nn.utils.parametrize``) as ``E_eff = E`` with rows ``R`` replaced by
``encoder(seed)``, where ``seed`` ``[|R|, d]`` is a new parameter initialised from ``E[R]``. Every backbone
parameter, ``E`` included, gets ``requires_grad=False`` and never reaches the optimizer, so neither Adam's state
nor (decoupled or L2) weight decay can move a frozen value; the tied MLM decoder reads ``E_eff`` too, as the
article's ``M⊙E + (1-M)⊙stopgrad(E)``. ``train_backbone=True`` fine-tunes everything instead.

**Prompt encoders.** ``none`` (the prompt rows themselves, Su's choice), ``lstm`` (the paper's bi-LSTM + MLP,
``h = seed + MLP([LSTM_fwd; LSTM_bwd])``), ``mlp`` (``h = seed + MLP(seed)``). The residual form with a zero-initialised
last layer is our choice: at step 0 every encoder gives exactly ``E[R]``, so the model's outputs equal the
unmodified model's.

**Prompt ids.** ``[unused1]..[unusedN]`` looked up by string (:func:`prompt_token_ids`); a vocabulary without
them (kexue's character vocabularies) gets new tokens ``[P1]..[PN]`` and new embedding rows.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from kexue.errors import ConfigError

REFERENCE_TEMPLATE = "{p}{p}{p}{p}{mask}{p}{p}{p}{p}{text}"
"""bojone/P-tuning's BERT layout: ``[CLS] u1 u2 u3 u4 [MASK] u5 u6 u7 u8 text [SEP]``."""
PROMPT_ENCODERS = ("none", "lstm", "mlp")


def prompt_token_ids(tokenizer, n: int, model: nn.Module | None = None) -> list[int]:
    """Ids of ``n`` prompt tokens: ``[unused1]..[unusedn]`` when the vocabulary has them all (looked up by
    string, never by a fixed id), else new special tokens ``[P1]..[Pn]`` added to ``tokenizer`` (and rows added
    to ``model``'s word embeddings and MLM bias, see :func:`grow_vocabulary`).

    Raises:
        ConfigError: ``n < 1``; new tokens needed but no ``model`` given.
    """
    if n < 1:
        raise ConfigError(f"--num-prompts: expected at least 1 prompt token, got {n}")
    vocab = tokenizer.backend.get_vocab()
    unused = [f"[unused{i}]" for i in range(1, n + 1)]
    if all(t in vocab for t in unused):
        return [vocab[t] for t in unused]
    new = [f"[P{i}]" for i in range(1, n + 1)]
    if not all(t in vocab for t in new):
        if model is None:
            raise ConfigError(f"the vocabulary has no {unused[0]}..{unused[-1]}: pass the model so that prompt "
                              "tokens can be added")
        tokenizer.backend.add_special_tokens({"additional_special_tokens": new})
        grow_vocabulary(model, len(tokenizer.backend))
    vocab = tokenizer.backend.get_vocab()
    return [vocab[t] for t in new]


def grow_vocabulary(model: nn.Module, vocab_size: int) -> None:
    """Grow kexue's Transformer to ``vocab_size`` tokens: new word-embedding rows drawn like BERT's init
    (normal, std 0.02) and zero MLM biases; existing rows unchanged.

    Raises:
        ConfigError: a model without ``embeddings.word_embeddings`` (not kexue's Transformer) or a smaller size.
    """
    old = getattr(getattr(model, "embeddings", None), "word_embeddings", None)
    if not isinstance(old, nn.Embedding):
        raise ConfigError("adding prompt tokens needs kexue's Transformer (embeddings.word_embeddings)")
    n_old, width = old.weight.shape
    if vocab_size < n_old:
        raise ConfigError(f"cannot shrink the vocabulary from {n_old} to {vocab_size}")
    new = nn.Embedding(vocab_size, width, padding_idx=old.padding_idx).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        nn.init.normal_(new.weight, std=0.02)
        new.weight[:n_old] = old.weight
    model.embeddings.word_embeddings = new
    head = getattr(model, "mlm_head", None)
    if head is not None and head.bias is not None:
        bias = torch.zeros(vocab_size, dtype=head.bias.dtype, device=head.bias.device)
        bias[:n_old] = head.bias.detach()
        head.bias = nn.Parameter(bias)
    model.config.vocab_size = vocab_size


class PromptEncoder(nn.Module):
    """``[n, d] -> [n, d]``: identity (``none``), ``x + MLP([LSTM_fwd; LSTM_bwd](x))`` (``lstm``) or
    ``x + MLP(x)`` (``mlp``); the MLP's last layer starts at zero, so the output starts equal to the input.

    Raises:
        ConfigError: an unknown kind (``--prompt-encoder``) or an odd width with ``lstm``.
    """

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind not in PROMPT_ENCODERS:
            raise ConfigError(f"--prompt-encoder: expected one of {', '.join(PROMPT_ENCODERS)}, got {kind!r}")
        if kind == "lstm" and dim % 2:
            raise ConfigError(f"--prompt-encoder lstm: needs an even embedding width, got {dim}")
        self.kind = kind
        self.lstm = nn.LSTM(dim, dim // 2, batch_first=True, bidirectional=True) if kind == "lstm" else None
        if kind != "none":
            self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings ``[n, d]`` from the seed ``[n, d]``."""
        if self.kind == "none":
            return x
        h = self.lstm(x[None])[0][0] if self.lstm is not None else x
        return x + self.mlp(h)


class PromptRows(nn.Module):
    """The parametrization ``E -> E`` with rows ``row_ids`` replaced by ``encoder(seed)`` (out of place).

    Attributes:
        row_ids: ``[n]`` long buffer; seed: ``[n, d]`` parameter (initialised from ``E[row_ids]``); encoder.
    """

    def __init__(self, rows: torch.Tensor, row_ids: Sequence[int], kind: str) -> None:
        super().__init__()
        self.register_buffer("row_ids", torch.as_tensor(list(row_ids), dtype=torch.long))
        self.seed = nn.Parameter(rows.detach().clone())
        self.encoder = PromptEncoder(kind, rows.shape[1]).to(rows.device, rows.dtype)

    def prompt(self) -> torch.Tensor:
        """The current prompt rows ``[n, d]``."""
        return self.encoder(self.seed)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """``E_eff`` ``[vocab, d]``."""
        return weight.index_put((self.row_ids,), self.prompt())


def freeze_all_but_prompt_rows(model: nn.Module, row_ids: Sequence[int], encoder: str = "none",
                               train_backbone: bool = False) -> PromptRows:
    """Reparametrise ``model.get_input_embeddings().weight`` with :class:`PromptRows` and, unless
    ``train_backbone``, freeze every other parameter (``requires_grad=False``). Returns the parametrization
    (its ``seed`` and ``encoder`` are the only trainable parameters when frozen).

    Works for kexue's Transformer, whose MLM decoder reads the embedding weight at every call (tying kept).
    Raises:
        ConfigError: duplicate or out-of-range row ids; a model already holding prompt rows.
    """
    emb = model.get_input_embeddings()
    if parametrize.is_parametrized(emb, "weight"):
        raise ConfigError("the model already has trainable prompt rows")
    ids = list(row_ids)
    vocab = emb.weight.shape[0]
    if len(set(ids)) != len(ids) or any(not 0 <= i < vocab for i in ids):
        raise ConfigError(f"prompt row ids must be distinct ids in [0, {vocab}), got {ids}")
    for p in model.parameters():
        p.requires_grad_(train_backbone)
    rows = PromptRows(emb.weight[ids], ids, encoder)
    parametrize.register_parametrization(emb, "weight", rows)
    return rows


def merged_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with the prompt rows written into a plain embedding weight (for export)."""
    out = copy.deepcopy(model)
    emb = out.get_input_embeddings()
    if parametrize.is_parametrized(emb, "weight"):
        # a fresh nn.Embedding instead of remove_parametrizations, which would delete the property from the
        # parametrized class that the copy shares with the original
        plain = nn.Embedding(*emb.weight.shape, padding_idx=emb.padding_idx)
        plain.weight = nn.Parameter(emb.weight.detach().clone())
        for name, module in out.named_modules():
            for child_name, child in module.named_children():
                if child is emb:
                    setattr(module, child_name, plain)
    for p in out.parameters():
        p.requires_grad_(True)
    return out


class PTuningModel(nn.Module):
    """The trained module of ``kexue train ptuning``: a backbone whose prompt rows are trainable.

    ``forward`` is the backbone's. ``save_pretrained(path)`` writes the backbone with the trained rows merged
    into its embedding matrix (a plain Hugging Face folder).
    """

    def __init__(self, backbone: nn.Module, row_ids: Sequence[int], encoder: str = "none",
                 train_backbone: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.prompt_rows = freeze_all_but_prompt_rows(backbone, row_ids, encoder, train_backbone)

    def forward(self, *args, **kwargs):
        """The backbone's forward (``mlm_logits`` read the prompt rows)."""
        return self.backbone(*args, **kwargs)

    def save_pretrained(self, path: str | Path) -> None:
        """Save the merged backbone into ``path``."""
        merged_copy(self.backbone).save_pretrained(path)
