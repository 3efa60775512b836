"""``kexue train pet`` / ``train ptuning`` / ``eval nsp-zeroshot`` end to end on a tiny checkpoint with MLM and NSP
heads: results, exports, the article's 1% split, and P-tuning frozen through the Trainer's AdamW with weight
decay."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from kexue.cli import main
from kexue.data.tokenization import Tokenizer
from kexue.models import Transformer, TransformerConfig
from kexue.tasks.prompt_data import load_prompt_data


@pytest.fixture(scope="module")
def tiny_zh(tmp_path_factory, kexue_data):
    texts = [line.split("\t")[0] for line in
             (kexue_data / "sentiment_zh" / "sentiment.train.data").read_text(encoding="utf-8").splitlines()[:2000]]
    texts += (kexue_data / "fewclue" / "eprstmt" / "test_public.json").read_text(encoding="utf-8").splitlines()
    texts += ["下面报导一则新闻。很满意不好差这是篇的？，"]
    tok = Tokenizer.train_new(texts, kind="char", vocab_size=6000)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(family="bert", vocab_size=tok.vocab_size, hidden_size=32,
                                          num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                                          max_position_embeddings=160, mlm=True, nsp=True, pooler=True,
                                          pad_token_id=tok.pad_token_id))
    folder = tmp_path_factory.mktemp("tiny-zh")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run(args, capsys):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


COMMON = ["--max-steps", 2, "--batch-size", 8, "--eval-limit", 16, "--no-progress", "--max-length", 64]


def test_sentiment_split_is_the_articles_first_percent(kexue_data):
    splits = load_prompt_data("sentiment_zh")
    lines = (kexue_data / "sentiment_zh" / "sentiment.train.data").read_text(encoding="utf-8").splitlines()
    assert len(splits.train) == 168 and len(splits.unlabelled) == 16883 - 168      # int(16883 * 0.01)
    assert [e.text_a for e in splits.train] == [line.split("\t")[0] for line in lines[:168]]
    assert splits.unlabelled[0].text_a == lines[168].split("\t")[0] and splits.unlabelled[0].label is None
    assert len(splits.dev) == 2111 and len(splits.test) == 2111
    sst2 = load_prompt_data("sst2")
    assert len(sst2.train) == 606 and len(sst2.unlabelled) == 60614 - 606 and len(sst2.test) == 872   # 1% of 60614


def test_train_pet_semi_supervised(tiny_zh, tmp_path, capsys):
    out = tmp_path / "pet"
    code, stdout, err = run(["train", "pet", "--model", tiny_zh, "--data", "fewclue/eprstmt", "--mode",
                             "semi-supervised", "--unlabelled-limit", 16, "--output", out, *COMMON], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["labelled"] == 32 and results["pattern"] == "{mask}满意。{text}"
    assert results["optimizer_steps"] == 2 and set(results["best"]) == {"dev", "test"}
    for acc in (*results["zero_shot"].values(), *results["best"].values()):
        assert acc * 16 / 100 == pytest.approx(round(acc * 16 / 100))                # k of 16 examples
    meta = json.loads((out / "best" / "prompting.json").read_text(encoding="utf-8"))
    assert meta["verbalizer"] == {"0": [["不"]], "1": [["很"]]} and meta["prompt_ids"] is None
    assert (out / "best" / "tokenizer.json").is_file()
    code, _, err = run(["train", "pet", "--model", tiny_zh, "--data", "fewclue/eprstmt", "--output", out], capsys)
    assert code == 1 and "--output" in err                                        # a finished run is not reused


def test_train_ptuning_keeps_the_backbone_frozen_through_the_trainer(tiny_zh, tmp_path, capsys):
    out = tmp_path / "pt"
    code, _, err = run(["train", "ptuning", "--model", tiny_zh, "--data", "fewclue/eprstmt", "--output", out,
                        "--weight-decay", 0.1, "--lr", 1e-2, *COMMON], capsys)
    assert code == 0, err
    before = load_file(tiny_zh / "model.safetensors")
    after = load_file(out / "best" / "model.safetensors")
    assert after.keys() == before.keys()
    key = next(k for k in before if k.endswith("word_embeddings.weight"))
    vocab = before[key].shape[0]
    assert after[key].shape[0] == vocab + 8                                        # [P1]..[P8] added
    assert torch.equal(after[key][:vocab], before[key])
    for name in before:
        if name != key and not name.endswith("predictions.bias"):
            assert torch.equal(after[name], before[name]), name
    bias = next(k for k in before if k.endswith("predictions.bias"))
    assert torch.equal(after[bias][:vocab], before[bias]) and (after[bias][vocab:] == 0).all()
    tok = Tokenizer.from_pretrained(out / "best")
    assert tok.convert_ids_to_tokens(list(range(vocab, vocab + 8))) == [f"[P{i}]" for i in range(1, 9)]
    meta = json.loads((out / "best" / "prompting.json").read_text(encoding="utf-8"))
    assert meta["prompt_ids"] == list(range(vocab, vocab + 8))
    assert meta["pattern"] == "{p}{p}{p}{p}{mask}{p}{p}{p}{p}{text}"


def test_eval_nsp_zeroshot(tiny_zh, tmp_path, capsys):
    code, stdout, err = run(["eval", "nsp-zeroshot", "--model", tiny_zh, "--data", "fewclue/eprstmt", "--eval-limit",
                             20, "--output", tmp_path / "nsp.json"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "nsp.json").read_text(encoding="utf-8"))
    assert result["prompts"] == ["这次买的东西很差", "这次买的东西很好"] and result["examples"] == 20
    code, _, err = run(["eval", "nsp-zeroshot", "--model", tiny_zh, "--data", "fewclue/eprstmt", "--prompt", "x"],
                       capsys)
    assert code == 1 and "--prompt" in err


def test_pattern_inputs_and_eval_sample(kexue_data):
    from kexue.tasks.prompt_data import eval_subset, pattern_input

    chid = load_prompt_data("fewclue/chid").train[0]
    fields = pattern_input(chid)
    before, after = chid.text_a.split("#idiom#", 1)
    assert fields == {"text_a": before, "text_b": after}
    wsc = load_prompt_data("fewclue/cluewsc").train[0]
    assert pattern_input(wsc)["text_b"] == "其中他指的是树叶"
    test = load_prompt_data("fewclue/tnews").test
    assert len({r.label for r in test[:100]}) == 1                                  # the file is sorted by label
    sample = eval_subset(test, 100)
    assert len(sample) == 100 and len({r.label for r in sample}) >= 10 and sample == eval_subset(test, 100)
    assert [test.index(r) for r in sample] == sorted(test.index(r) for r in sample)
