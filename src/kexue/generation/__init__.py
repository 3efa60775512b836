"""Decoding with kexue's Transformer: greedy, batched beam search and sampling with a key/value cache (UniLM
seq2seq and causal LM), and prefix-tree (trie) constrained decoding ("Seq2Seq+前缀树",
https://kexue.fm/archives/8802).

- :func:`generate` (:mod:`.decoding`), returning a :class:`GenerationOutput`;
- :class:`KVCache` (:mod:`.cache`), used by ``Transformer(..., past_key_values=cache)``;
- :mod:`.sampling` (top-k / top-p filters), :mod:`.processing` (the logits-processor protocol);
- :class:`TokenTrie` (:mod:`.trie`, flat CSR arrays, save/load, memory-mapping) and :class:`TrieConstraint`
  (:mod:`.constraints`, with the look-ahead option); :mod:`.hf_adapter` for ``transformers``' ``generate()``.
"""

from kexue.generation.cache import KVCache
from kexue.generation.constraints import TrieConstraint, lcs_length, lookahead_reweight, lookahead_weights
from kexue.generation.decoding import generate
from kexue.generation.output import GenerationOutput
from kexue.generation.trie import TokenTrie, TrieBuilder

__all__ = ["GenerationOutput", "KVCache", "TokenTrie", "TrieBuilder", "TrieConstraint", "generate", "lcs_length",
           "lookahead_reweight", "lookahead_weights"]
