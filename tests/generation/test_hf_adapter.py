"""The trie constraint inside transformers' generate(): prefix_allowed_tokens_fn and the LogitsProcessor."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessor, LogitsProcessorList

from kexue.generation import TokenTrie
from kexue.generation.hf_adapter import HFTrieLogitsProcessor, trie_prefix_allowed_tokens_fn

EOS = 1
KEYS = [[5, 6, 7], [5, 6, 8], [5, 9], [10], [11, 12, 13, 14]]


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=20, n_positions=32, n_embd=16, n_layer=1, n_head=2, eos_token_id=EOS,
                        bos_token_id=EOS, pad_token_id=0)
    return GPT2LMHeadModel(config).eval()


class BanAllowed(LogitsProcessor):
    """Sets every trie token to -inf before the constraint (the failure of transformers#22890-style stacks)."""

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, EOS]] = -math.inf
        return scores


def check(out: torch.Tensor, prompt_length: int) -> None:
    keys = {tuple(k) for k in KEYS}
    for row in out[:, prompt_length:].tolist():
        end = row.index(EOS)
        assert tuple(row[:end]) in keys, row


@pytest.mark.parametrize("num_beams", [1, 3])
def test_prefix_allowed_tokens_fn(gpt2, num_beams):
    trie = TokenTrie.build(KEYS)
    prompts = torch.randint(2, 20, (3, 4))
    out = gpt2.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=trie.max_length + 1,
                        num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
                        prefix_allowed_tokens_fn=trie_prefix_allowed_tokens_fn(trie, EOS, prompt_length=4))
    check(out, 4)


@pytest.mark.parametrize("num_beams,do_sample", [(1, False), (3, False), (1, True)])
def test_logits_processor_survives_all_minus_infinity(gpt2, num_beams, do_sample):
    trie = TokenTrie.build(KEYS)
    prompts = torch.randint(2, 20, (2, 3))
    processors = LogitsProcessorList([BanAllowed(), HFTrieLogitsProcessor(trie, EOS, prompt_length=3)])
    out = gpt2.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=trie.max_length + 1,
                        num_beams=num_beams, do_sample=do_sample, logits_processor=processors)
    check(out, 3)
