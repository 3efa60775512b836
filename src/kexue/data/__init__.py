"""Data layer: readers for dataset formats, tokenisation with offsets, collation and length bucketing."""

from kexue.data.collate import PaddingCollator, pad_batch
from kexue.data.masking import MaskingConfig, whole_word_mask
from kexue.data.records import SentencePair
from kexue.data.tokenization import Tokenizer

__all__ = ["MaskingConfig", "PaddingCollator", "SentencePair", "Tokenizer", "pad_batch", "whole_word_mask"]
