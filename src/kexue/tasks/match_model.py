"""The model of ``kexue train match``: one cross-encoder for several pair tasks, optionally told the task through
conditional LayerNorm.

``[CLS] a [SEP] b [SEP]`` -> backbone -> masked mean over the tokens -> dropout -> ``Linear(H, 2)``, as the Sohu 2021
baseline. With ``conditional=True`` every LayerNorm (or RoFormerV2 scale-free norm) of the backbone becomes a
:class:`~kexue.nn.conditional_norm.ConditionalLayerNorm` driven by ``c = E[task_id]`` (an ``nn.Embedding(T, C)``,
shared by all norms); its ``W_γ``, ``W_β`` start at zero, so at initialisation the model is the pretrained one for
every task. Without it the same model never sees the task id.

A saved folder holds the backbone in the Hugging Face layout (the pretrained norms, unconditioned, so any tool can
read it), the tokenizer, ``kexue_match.json`` (tasks and options) and ``match_head.safetensors`` (the head, the
task embedding and every norm's ``W_γ``/``W_β``).

Source: "搜狐文本匹配:基于条件LayerNorm的多任务baseline", https://kexue.fm/archives/8337 (spec §5).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kexue.data.tokenization import Tokenizer
from kexue.errors import CheckpointError, ConfigError
from kexue.models.auto import load_encoder
from kexue.nn.conditional_norm import ConditionalLayerNorm, conditioned, convert_norms_to_conditional
from kexue.nn.pooling import masked_mean

MATCH_CONFIG = "kexue_match.json"
MATCH_WEIGHTS = "match_head.safetensors"


class MatchModel(nn.Module):
    """A task-aware pair classifier.

    Args:
        backbone: kexue's Transformer or a :class:`kexue.models.auto.HFEncoder` (returns ``last_hidden_state``).
        tokenizer: its :class:`Tokenizer` (saved with the model).
        tasks: the task names; the position is the task id.
        conditional: convert the backbone's norms to conditional ones (``--conditional-ln``).
        cond_dim: ``C``, the width of the task embedding (128 in the baseline).
        dropout: before the head. max_length: tokens per pair.

    Forward: ``input_ids``, ``attention_mask`` ``[B, L]``, ``token_type_ids`` ``[B, L]`` or ``None``, ``task_id``
    ``[B]`` (int64) -> logits ``[B, 2]``.

    Raises:
        ConfigError: no tasks, ``cond_dim`` < 1, or a backbone without norms under ``conditional``.
    """

    def __init__(self, backbone: nn.Module, tokenizer: Tokenizer, tasks: tuple[str, ...], conditional: bool,
                 cond_dim: int = 128, dropout: float = 0.1, max_length: int = 128) -> None:
        super().__init__()
        if not tasks:
            raise ConfigError("--tasks: at least one task is needed")
        if cond_dim < 1:
            raise ConfigError(f"--cond-dim: expected an integer >= 1, got {cond_dim}")
        self.encoder, self.tokenizer, self.tasks = backbone, tokenizer, tuple(tasks)
        self.conditional, self.cond_dim, self.dropout_p, self.max_length = conditional, cond_dim, dropout, max_length
        if conditional:
            convert_norms_to_conditional(backbone, cond_dim)
            self.task_embedding = nn.Embedding(len(tasks), cond_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(backbone.config.hidden_size), 2)

    def get_input_embeddings(self) -> nn.Embedding:
        """The backbone's word embeddings."""
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, task_id: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, 2]`` of a padded batch (``task_id`` is required when the model is conditional)."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        if self.conditional:
            if task_id is None:
                raise ConfigError("a conditional match model needs the task id of every pair")
            with conditioned(self.encoder, self.task_embedding(task_id)):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.classifier(self.dropout(masked_mean(hidden, attention_mask)))

    def tokenize(self, texts_a: list[str], texts_b: list[str]) -> list[dict[str, list[int]]]:
        """Unpadded ``input_ids``, ``token_type_ids``, ``attention_mask`` of each pair."""
        enc = self.tokenizer(texts_a, texts_b, max_length=self.max_length, truncation=True)
        return [{k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")}
                for i in range(len(texts_a))]

    def save_pretrained(self, path: str | Path) -> None:
        """Write the backbone (norms unconditioned, HF layout), tokenizer, ``kexue_match.json`` and the head."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with unconditioned(self.encoder):
            self.encoder.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        save_file(_head_state(self), str(path / MATCH_WEIGHTS))
        config = {"tasks": list(self.tasks), "conditional": self.conditional, "cond_dim": self.cond_dim,
                  "dropout": self.dropout_p, "max_length": self.max_length}
        (path / MATCH_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _is_backbone_weight(name: str) -> bool:
    """Whether a state-dict key is a pretrained backbone weight (saved in the HF layout), not a match weight."""
    return name.startswith("encoder.") and ".gamma_dense." not in name and ".beta_dense." not in name \
        and ".hidden." not in name


def _head_state(model: MatchModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not _is_backbone_weight(k)}


@contextmanager
def unconditioned(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block every :class:`ConditionalLayerNorm` of ``module`` is swapped back for the norm it wraps
    (so the module saves in its plain layout); restored after."""
    swapped = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
               if isinstance(child, ConditionalLayerNorm)]
    for parent, name, child in swapped:
        setattr(parent, name, child.norm)
    try:
        yield module
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def load_match_model(path: str | Path) -> MatchModel:
    """Load a folder written by :meth:`MatchModel.save_pretrained` (in eval mode).

    Raises:
        CheckpointError: the folder lacks the match files, or the saved match weights do not fit the model.
    """
    path = Path(path)
    for name in (MATCH_CONFIG, MATCH_WEIGHTS):
        if not (path / name).is_file():
            raise CheckpointError(f"{path} is not a saved match model (no {name})", missing=[name])
    config = json.loads((path / MATCH_CONFIG).read_text(encoding="utf-8"))
    backbone, _kind = load_encoder(path)
    model = MatchModel(backbone, Tokenizer.from_pretrained(path), tuple(config["tasks"]), config["conditional"],
                       config["cond_dim"], config["dropout"], config["max_length"])
    saved = load_file(str(path / MATCH_WEIGHTS))
    own = _head_state(model)
    missing, unexpected = set(own) - set(saved), set(saved) - set(own)
    mismatched = {k: (tuple(own[k].shape), tuple(v.shape)) for k, v in saved.items()
                  if k in own and own[k].shape != v.shape}
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{path / MATCH_WEIGHTS} does not fit the match model", missing=missing,
                              unexpected=unexpected, mismatched=mismatched)
    model.load_state_dict(saved, strict=False)
    return model.eval()


def resolve_match_dir(path: str | Path) -> Path:
    """A run folder's ``best/`` (else ``last/``), or the folder itself when it holds a saved match model.

    Raises:
        ConfigError: no saved match model there (``--model``).
    """
    path = Path(path)
    for candidate in (path / "best", path / "last", path):
        if (candidate / MATCH_CONFIG).is_file():
            return candidate
    raise ConfigError(f"--model {path}: no saved match model here (expected best/, last/ or {MATCH_CONFIG})")
