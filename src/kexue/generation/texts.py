"""Text in, text out: tokenise sources, :func:`~kexue.generation.decoding.generate` in batches, decode the targets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kexue.data.collate import pad_batch
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.generation.decoding import generate

_CJK_SPACE = re.compile(r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]) (?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])")


def target_text(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """The text of target ids without special tokens; CJK characters joined without the spaces WordPiece puts."""
    return _CJK_SPACE.sub("", tokenizer.decode(list(ids), skip_special_tokens=True))


def generate_texts(model, tokenizer: Tokenizer, texts: Sequence[str], *, max_source_length: int = 128,
                   batch_size: int = 16, mode: str = "unilm", **options) -> list[list[dict]]:
    """Generate from each text: ``[CLS] text[:max_source_length] [SEP]`` (UniLM) or ``[CLS] text`` (causal).

    Args:
        model: a kexue Transformer with an MLM head; tokenizer: its tokenizer.
        texts: the sources; max_source_length: source tokens kept (``--max-source-length``).
        batch_size: sources per :func:`generate` call (``--batch-size``).
        options: :func:`generate`'s keyword options (``end_token_id`` defaults to ``[SEP]``).
    Returns:
        per text, ``num_return_sequences`` dicts ``{"text", "ids", "score", "finished"}`` (ids without padding).
    Raises:
        ConfigError: ``max_source_length`` / ``batch_size`` below 1; any invalid :func:`generate` option.
    """
    for flag, value in (("--max-source-length", max_source_length), ("--batch-size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value!r}")
    options.setdefault("end_token_id", tokenizer.sep_token_id)
    results: list[list[dict]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        rows = [ids[1:-1][:max_source_length] for ids in tokenizer(chunk, truncation=False)["input_ids"]]
        tail = [tokenizer.sep_token_id] if mode == "unilm" else []
        features = [{"input_ids": [tokenizer.cls_token_id, *ids, *tail]} for ids in rows]
        batch = pad_batch(features, pad_token_id=tokenizer.pad_token_id)
        out = generate(model, batch["input_ids"], attention_mask=batch["attention_mask"], mode=mode, **options)
        for seqs, scores, finished in zip(out.tolist(), out.scores.tolist(), out.finished.tolist()):
            results.append([{"text": target_text(tokenizer, s), "ids": s, "score": sc, "finished": f}
                            for s, sc, f in zip(seqs, scores, finished)])
    return results

