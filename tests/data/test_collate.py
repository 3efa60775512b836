"""Dynamic padding collator."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from kexue.data.collate import PaddingCollator, pad_batch
from kexue.errors import ConfigError


def test_pads_to_longest_and_builds_attention_mask():
    batch = pad_batch([{"input_ids": [101, 7, 102], "token_type_ids": [0, 0, 0], "label": 1},
                       {"input_ids": [101, 102], "token_type_ids": [0, 0], "label": 0}], pad_token_id=5)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["label"].tolist() == [1, 0]
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == batch["label"].dtype == torch.long


def test_existing_attention_mask_padded_with_zero_and_float_labels():
    batch = pad_batch([{"input_ids": [1], "attention_mask": [1], "label": 4.2},
                       {"input_ids": [1, 2, 3, 4], "attention_mask": [1, 1, 1, 1], "label": 3}], pad_token_id=0)
    assert batch["attention_mask"].tolist() == [[1, 0, 0, 0], [1, 1, 1, 1]]
    assert batch["label"].dtype == torch.float32
    assert torch.allclose(batch["label"], torch.tensor([4.2, 3.0]))


def test_pair_features_get_one_mask_per_side():
    batch = pad_batch([{"a_input_ids": [1, 2], "b_input_ids": [3], "label": 1},
                       {"a_input_ids": [4], "b_input_ids": [5, 6, 7], "label": 0}], pad_token_id=0)
    assert batch["a_input_ids"].shape == (2, 2) and batch["b_input_ids"].shape == (2, 3)
    assert batch["a_attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["b_attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]


def test_multiple_of_left_padding_and_label_sequences():
    feats = [{"input_ids": [9, 9, 9], "labels": [1, 2, 3]}, {"input_ids": [9], "labels": [4]}]
    batch = pad_batch(feats, pad_token_id=0, pad_to_multiple_of=4, padding_side="left")
    assert batch["input_ids"].tolist() == [[0, 9, 9, 9], [0, 0, 0, 9]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 1, 2, 3], [-100, -100, -100, 4]]


def test_matches_transformers_collator():
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3, "c": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    feats = [hf(t) for t in ["a b c", "a", "b c"]]
    ours = pad_batch([dict(f) for f in feats], pad_token_id=hf.pad_token_id)
    ref = DataCollatorWithPadding(hf)([dict(f) for f in feats])
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key


def test_collator_in_dataloader_and_pickles():
    collator = PaddingCollator(pad_token_id=3)
    clone = pickle.loads(pickle.dumps(collator))
    data = [{"input_ids": [1] * n, "label": n} for n in (1, 4, 2)]
    (batch,) = list(DataLoader(data, batch_size=3, collate_fn=clone))
    assert batch["input_ids"].tolist() == [[1, 3, 3, 3], [1, 1, 1, 1], [1, 1, 3, 3]]


@pytest.mark.parametrize(("features", "match"), [
    ([], "empty batch"),
    ([{"input_ids": [1]}, {"input_ids": [1], "label": 1}], "keys"),
    ([{"input_ids": [1], "label": None}], "None"),
    ([{"input_ids": [1], "label": "x"}], "expected lists of ints or numbers"),
])
def test_bad_batches(features, match):
    with pytest.raises(ConfigError, match=match):
        pad_batch(features)


def test_bad_options():
    with pytest.raises(ConfigError, match="padding_side"):
        pad_batch([{"input_ids": [1]}], padding_side="middle")
    with pytest.raises(ConfigError, match="pad_to_multiple_of"):
        pad_batch([{"input_ids": [1]}], pad_to_multiple_of=0)
