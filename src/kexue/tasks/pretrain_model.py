"""The module trained by ``kexue pretrain``: a kexue Transformer encoder with its MLM (and NSP) head, the loss,
and the held-out evaluation.

The heads are held next to the encoder rather than inside it so that the vocabulary projection runs only at the
masked positions (15% of the tokens: about a third less compute per step for a small model with an 8k vocabulary);
:meth:`PretrainingModel.to_transformer` puts them back into one :class:`kexue.models.Transformer` with
``mlm_head`` / ``nsp_head``, which is what is saved (Hugging Face layout: ``BertForPreTraining`` /
``RoFormerForMaskedLM`` keys). Sources: RoFormerV2 https://kexue.fm/archives/8998; BERT (MLM + NSP).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kexue.data.masking import IGNORE_INDEX
from kexue.models import Transformer
from kexue.models.config import TransformerConfig
from kexue.models.heads import MaskedLMHead, NSPHead

#: RoFormerV2's init constant: 1 / (std of a standard normal truncated to ±2), undoing the truncation's shrinkage.
TRUNCATION_GAIN = 1.13684723


def roformer_v2_init_(model: nn.Module, num_layers: int) -> None:
    """RoFormerV2's initialisation, in place: every Linear / Embedding weight ~ truncated normal (±2σ) with
    ``σ = 1.13684723 / sqrt(fan) / sqrt(num_layers)``; ``fan`` = input width of a Linear (``weight.shape[1]``),
    embedding width of an Embedding (bert4keras reads ``shape[1]`` when ``shape[0]`` is a vocabulary > 10000; we
    read it for every vocabulary size, since an 8k vocabulary is still a vocabulary). Padding rows are zeroed.

    Source: bert4keras ``RoFormerV2`` initializer, https://kexue.fm/archives/8998 (spec arch §7).
    """
    scale = 1.0 / math.sqrt(max(num_layers, 1))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            fan = module.weight.shape[1]
            std = TRUNCATION_GAIN / math.sqrt(fan) * scale
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()


class PretrainingModel(nn.Module):
    """Encoder + MLM head (+ NSP head) computing the pretraining loss.

    Args:
        config: the model's :class:`TransformerConfig` (its ``mlm``/``nsp`` flags say which heads exist;
            ``nsp`` needs ``pooler``).
        encoder: an existing headless Transformer to train (default: a new one from ``config``).
    Raises:
        ConfigError: an invalid config.
    """

    def __init__(self, config: TransformerConfig, encoder: Transformer | None = None) -> None:
        super().__init__()
        self.config = config
        base = dataclasses.replace(config, mlm=False, nsp=False)
        self.encoder = encoder if encoder is not None else Transformer(base)
        self.mlm_head = MaskedLMHead(config)
        self.nsp_head = NSPHead(config.hidden_size) if config.nsp else None

    @property
    def residual_alpha(self) -> float:
        """RoFormerV2's residual warm-up α of the encoder."""
        return self.encoder.residual_alpha

    @residual_alpha.setter
    def residual_alpha(self, value: float) -> None:
        self.encoder.residual_alpha = value

    @classmethod
    def from_transformer(cls, model: Transformer, nsp: bool) -> "PretrainingModel":
        """Split a Transformer with heads into encoder + heads (``--init-from``); a missing head is new.

        The MLM decoder is tied to the word embeddings, so a missing MLM head starts from the embeddings.
        """
        config = dataclasses.replace(model.config, mlm=True, nsp=nsp, pooler=model.config.pooler or nsp)
        out = cls(config)
        state = {k: v for k, v in model.state_dict().items()}
        encoder_state = {k: v for k, v in state.items() if not k.startswith(("mlm_head.", "nsp_head."))}
        missing, unexpected = out.encoder.load_state_dict(encoder_state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("pooler.")]:
            raise ValueError(f"encoder keys do not match: missing {missing}, unexpected {unexpected}")
        for name in ("mlm_head", "nsp_head"):
            head = getattr(out, name)
            sub = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(name + ".")}
            if head is not None and sub:
                head.load_state_dict(sub)
        return out

    def to_transformer(self) -> Transformer:
        """One :class:`Transformer` with ``mlm_head`` / ``nsp_head`` holding these weights (a copy)."""
        model = Transformer(self.config)
        state = {**self.encoder.state_dict(),
                 **{f"mlm_head.{k}": v for k, v in self.mlm_head.state_dict().items()}}
        if self.nsp_head is not None:
            state.update({f"nsp_head.{k}": v for k, v in self.nsp_head.state_dict().items()})
        model.load_state_dict(state)
        return model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                labels: torch.Tensor, nsp_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss of one batch.

        Args:
            input_ids, attention_mask, token_type_ids, labels: ``[B, L]`` long (``labels`` = original ids at the
                masked positions, ``-100`` elsewhere). nsp_labels: ``[B]`` (0 IsNext, 1 NotNext).
        Returns:
            ``{"loss": mlm_loss (+ nsp_loss), "mlm_loss", "mlm_accuracy", ["nsp_loss", "nsp_accuracy"]}``, scalars;
            the MLM loss is the mean cross-entropy over masked tokens (0 when a batch has none).
        """
        out = self.encoder(input_ids, attention_mask, token_type_ids)
        where = labels != IGNORE_INDEX
        h = out.last_hidden_state[where]                                       # [M, H]
        target = labels[where]
        logits = self.mlm_head(h, self.encoder.embeddings.word_embeddings.weight).float()
        if target.numel():
            mlm_loss = F.cross_entropy(logits, target)
            mlm_acc = (logits.argmax(-1) == target).float().mean()
        else:
            mlm_loss = logits.sum() * 0.0
            mlm_acc = mlm_loss.detach()
        result = {"loss": mlm_loss, "mlm_loss": mlm_loss.detach(), "mlm_accuracy": mlm_acc.detach()}
        if self.nsp_head is not None and nsp_labels is not None:
            nsp_logits = self.nsp_head(out.pooler_output).float()
            nsp_loss = F.cross_entropy(nsp_logits, nsp_labels)
            result["loss"] = mlm_loss + nsp_loss
            result["nsp_loss"] = nsp_loss.detach()
            result["nsp_accuracy"] = (nsp_logits.argmax(-1) == nsp_labels).float().mean().detach()
        return result


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Trainer's ``compute_loss``: the model's loss dict for a collated batch."""
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["labels"],
                 batch.get("nsp_labels"))


def heldout_evaluator(batches: Sequence[dict[str, torch.Tensor]]) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate(model)``: token-weighted MLM loss / accuracy and NSP accuracy over fixed held-out batches."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        sums = {"mlm_loss": 0.0, "mlm_accuracy": 0.0, "nsp_accuracy": 0.0}
        tokens = examples = 0
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["labels"] != IGNORE_INDEX).sum())
            out = compute_loss(model, batch)
            sums["mlm_loss"] += float(out["mlm_loss"]) * n
            sums["mlm_accuracy"] += float(out["mlm_accuracy"]) * n
            if "nsp_accuracy" in out:
                sums["nsp_accuracy"] += float(out["nsp_accuracy"]) * len(batch["nsp_labels"])
            tokens += n
            examples += len(batch["input_ids"])
        metrics = {"mlm_loss": sums["mlm_loss"] / max(tokens, 1), "mlm_accuracy": sums["mlm_accuracy"] / max(tokens, 1)}
        if getattr(model, "nsp_head", None) is not None:
            metrics["nsp_accuracy"] = sums["nsp_accuracy"] / max(examples, 1)
        return metrics
    return evaluate


def save_pretraining_model(tokenizer) -> Callable[[nn.Module, Path], None]:
    """The Trainer's ``save_model``: the model as one Transformer with heads + the tokenizer (HF layout)."""
    def save(model: nn.Module, folder: Path) -> None:
        model.to_transformer().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return save
