"""`kexue pretrain`: next-sentence pairs, dynamic whole-word masking, RoFormerV2 init, the head split, token-budget
batches, and end to end: held-out MLM loss falls on real text and a killed run resumes to the same weights."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.cli import main
from kexue.data.bucketing import token_budget_batches
from kexue.data.masking import IGNORE_INDEX
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.tasks.pretrain import pack_documents
from kexue.tasks.pretrain_data import IS_NEXT, NOT_NEXT, MaskingCollate, PretrainDataset
from kexue.tasks.pretrain_model import PretrainingModel, roformer_v2_init_
from kexue.tasks.pretrain_recipe import PretrainConfig, read_corpus, train_pretrain
from kexue.train import Hook, TrainerConfig, find_latest_checkpoint


@pytest.fixture(scope="module")
def corpus(kexue_data, tmp_path_factory):
    """60 zhwiki documents as a corpus file, its documents, a character tokenizer and packed examples."""
    text = (kexue_data / "zh_raw_sentences" / "zhwiki_bert_sampled.txt").read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n") if b.strip()][:60]
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    docs = read_corpus(path)
    tok = Tokenizer.train_new([s for d in docs for s in d], kind="char", vocab_size=3000)
    examples = [e for e in pack_documents(docs, tok, max_length=63) if len(e.input_ids) >= 6]
    return path, docs, tok, examples


def _body(ids, tok):
    return [i for i in ids if i not in (tok.cls_token_id, tok.sep_token_id)]


def test_read_corpus_documents_and_errors(corpus, tmp_path):
    path, docs, _, _ = corpus
    assert len(docs) == 60 and all(docs)
    assert read_corpus(path, limit=5) == docs[:5]
    bad = tmp_path / "bad.txt"
    bad.write_bytes("好的\n".encode() + b"\xff\xfe\n")
    with pytest.raises(Exception, match=r"bad.txt.*2|line 2"):
        read_corpus(bad)
    with pytest.raises(Exception, match="pretrain-corpus"):
        read_corpus(tmp_path / "missing.txt")


def test_next_sentence_pairs(corpus):
    _, _, tok, examples = corpus
    ds = PretrainDataset(examples, nsp=True, seed=3, cls_id=tok.cls_token_id, sep_id=tok.sep_token_id)
    by_doc_text = {}
    for e in examples:
        by_doc_text.setdefault(e.document, []).extend(e.input_ids[1:-1])
    labels = []
    for i in range(len(ds)):
        it = ds[i]
        ids, tt, words = it["input_ids"], it["token_type_ids"], it["word_ids"]
        assert len(ids) == len(tt) == len(words) <= 64
        first_sep = ids.index(tok.sep_token_id)
        a, b = ids[1:first_sep], ids[first_sep + 1:-1]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and a and b
        assert tt == [0] * (len(a) + 2) + [1] * (len(b) + 1)            # segment ids per segment
        assert [w for w, i in zip(words, ids) if i in (tok.cls_token_id, tok.sep_token_id)] == [-1, -1, -1]
        real = [w for w in words if w >= 0]
        assert real == sorted(real) and set(real) == set(range(max(real) + 1))   # compact, A's before B's
        own = examples[i].input_ids[1:-1]
        if it["nsp_label"] == IS_NEXT:
            assert a + b == own                                          # the example itself, cut once
        else:
            assert a == own[:len(a)] and b != own[len(a):]
            assert any(b == by_doc_text[d][s:s + len(b)] for d in by_doc_text if d != examples[i].document
                       for s in range(len(by_doc_text[d]) - len(b) + 1))  # B is text of another document
        labels.append(it["nsp_label"])
    assert 0.35 < sum(labels) / len(labels) < 0.65
    ds.set_epoch(1)
    assert [ds[i]["nsp_label"] for i in range(len(ds))] != labels       # redrawn every epoch
    ds.set_epoch(0)
    assert [ds[i]["nsp_label"] for i in range(len(ds))] == labels       # and reproducible


def test_single_segment_items_and_collate_masks_dynamically(corpus):
    _, _, tok, examples = corpus
    ds = PretrainDataset(examples, nsp=False, seed=0, cls_id=tok.cls_token_id, sep_id=tok.sep_token_id)
    assert ds[0]["input_ids"] == examples[0].input_ids and set(ds[0]["token_type_ids"]) == {0}
    special = (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.unk_token_id)
    collate = MaskingCollate(tok.pad_token_id, tok.mask_token_id, tok.vocab_size, special, seed=5)
    items = [ds[i] for i in range(8)]
    a, again = collate(items), collate(items)
    assert torch.equal(a["input_ids"], again["input_ids"]) and torch.equal(a["labels"], again["labels"])
    ds.set_epoch(1)
    b = collate([ds[i] for i in range(8)])
    assert not torch.equal(a["labels"], b["labels"])                     # a new mask in a new epoch
    chosen = a["labels"] != IGNORE_INDEX
    original = torch.nn.utils.rnn.pad_sequence([torch.tensor(it["input_ids"]) for it in items], batch_first=True,
                                               padding_value=tok.pad_token_id)
    assert torch.equal(a["labels"][chosen], original[chosen])
    assert not chosen[a["attention_mask"] == 0].any()
    rate = chosen.sum() / a["attention_mask"].sum()
    assert 0.05 < float(rate) < 0.3


def test_roformer_v2_init_std_and_truncation():
    cfg = TransformerConfig(family="roformer_v2", vocab_size=3000, hidden_size=128, num_hidden_layers=4,
                            num_attention_heads=2, intermediate_size=512, pooler=False)
    model = Transformer(cfg)
    roformer_v2_init_(model, num_layers=4)
    w = model.layers[0].output.weight                                   # Linear 512 -> 128: fan_in 512
    sigma = 1.13684723 / math.sqrt(512) / math.sqrt(4)                  # the truncated normal's σ parameter
    # the gain undoes the ±2σ truncation's shrinkage (std 0.8796σ): the realised std is 1/sqrt(fan)/sqrt(L)
    assert abs(w.std().item() / (1 / math.sqrt(512) / 2) - 1) < 0.02
    assert w.abs().max().item() <= 2 * sigma + 1e-7 and w.abs().max().item() > 1.9 * sigma
    e = model.embeddings.word_embeddings.weight[1:]                     # fan = the embedding width
    assert abs(e.std().item() / (1 / math.sqrt(128) / 2) - 1) < 0.02
    assert not any(n.endswith("bias") for n, _ in model.named_parameters())


def test_heads_split_and_merge_round_trip(tmp_path):
    cfg = TransformerConfig(family="bert", vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, pooler=True, mlm=True, nsp=True)
    model = PretrainingModel(cfg).eval()
    ids = torch.randint(5, 200, (3, 12))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 2] = ids[:, 2]
    full = model.to_transformer().eval()
    with torch.no_grad():
        out = full(ids, torch.ones_like(ids), torch.zeros_like(ids))
        ours = model(ids, torch.ones_like(ids), torch.zeros_like(ids), labels, torch.tensor([0, 1, 0]))
    ref = torch.nn.functional.cross_entropy(out.mlm_logits[:, 2], ids[:, 2])
    ref_nsp = torch.nn.functional.cross_entropy(out.nsp_logits, torch.tensor([0, 1, 0]))
    assert torch.allclose(ours["mlm_loss"], ref, atol=1e-6) and torch.allclose(ours["nsp_loss"], ref_nsp, atol=1e-6)
    full.save_pretrained(tmp_path / "m")
    again = PretrainingModel.from_transformer(Transformer.from_pretrained(tmp_path / "m"), nsp=True).eval()
    for (n, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(p, q), n


def test_token_budget_batches():
    lengths = torch.randint(3, 60, (500,)).tolist() + [100]
    batches = token_budget_batches(lengths, 256, torch.Generator().manual_seed(0), max_examples=16)
    assert sorted(i for b in batches for i in b) == list(range(501))
    assert all(len(b) * max(lengths[i] for i in b) <= 256 or len(b) == 1 for b in batches)
    assert all(len(b) <= 16 for b in batches)
    assert batches == token_budget_batches(lengths, 256, torch.Generator().manual_seed(0), max_examples=16)
    with pytest.raises(ConfigError, match="--max-tokens"):
        token_budget_batches(lengths, 0, torch.Generator())


def _tiny_cfg(path, **kw):
    return PretrainConfig(corpus=path, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                          vocab_size=3000, max_length=64, max_tokens=1024, heldout_fraction=0.1, heldout_max=64,
                          alpha_warmup_steps=4, **kw)


def test_pretraining_lowers_heldout_mlm_loss(corpus, tmp_path):
    path = corpus[0]
    tcfg = TrainerConfig(output_dir=tmp_path / "run", max_steps=40, batch_size=64, learning_rate=3e-3,
                         warmup_ratio=0.1, eval_every=40, seed=1, progress_bar=False, precision="bf16")
    results = train_pretrain(_tiny_cfg(path), tcfg, log=lambda s: None)
    # a fixed held-out set with fixed masks: a fall of 0.5 nats is far outside evaluation noise (none here)
    assert results["best"]["mlm_loss"] < results["before"]["mlm_loss"] - 0.5
    assert results["best"]["mlm_accuracy"] > results["before"]["mlm_accuracy"]
    assert results["tokens_seen"] > 40 * 500
    model = Transformer.from_pretrained(tmp_path / "run" / "best")
    assert model.config.family == "roformer_v2" and model.mlm_head is not None and model.nsp_head is not None
    assert Tokenizer.from_pretrained(tmp_path / "run" / "best").vocab_size == model.config.vocab_size


class Kill(Hook):
    def on_step_end(self, trainer) -> None:
        if trainer.state.global_step == 7:
            raise KeyboardInterrupt


def test_killed_run_resumes_to_the_same_weights(corpus, tmp_path):
    path = corpus[0]

    def run(out, resume=False, kill=False):
        tcfg = TrainerConfig(output_dir=out, max_steps=10, batch_size=64, learning_rate=3e-3, save_every=5,
                             eval_every=5, seed=2, progress_bar=False, resume=resume)
        return train_pretrain(_tiny_cfg(path, corpus_limit=30), tcfg, log=lambda s: None,
                              extra_hooks=[Kill()] if kill else ())

    run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", kill=True)
    assert find_latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-00000005"
    resumed = run(tmp_path / "b", resume=True)
    assert resumed["optimizer_steps"] == 10
    a = Transformer.from_pretrained(tmp_path / "a" / "last").state_dict()
    b = Transformer.from_pretrained(tmp_path / "b" / "last").state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    first = (tmp_path / "a" / "results.json").read_text()
    assert '"tokens_seen"' in first
    import json
    assert json.loads(first)["tokens_seen"] == resumed["tokens_seen"]


@pytest.mark.parametrize("args,flag", [
    (["--family", "gpt"], "--family"),
    (["--max-tokens", "16"], "--max-tokens"),
    (["--hidden-size", "30", "--num-heads", "4"], "--num-heads"),
    (["--alpha-warmup-steps", "50", "--max-steps", "10"], "--alpha-warmup-steps"),
    (["--optimizer", "lamb"], "--optimizer"),
])
def test_cli_bad_options_are_one_line_errors(corpus, tmp_path, args, flag, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as err:
        main(["pretrain", "--corpus", str(corpus[0]), "--output", str(out), "--no-progress", "--hidden-size", "64",
              "--num-layers", "1", "--num-heads", "2", "--intermediate-size", "64", "--max-length", "32", *args])
    message = capsys.readouterr().err
    assert err.value.code == 1, message
    assert flag in message and "Traceback" not in message and message.count("\n") == 1
    assert not out.exists()


def test_cli_missing_corpus_names_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["pretrain", "--corpus", str(tmp_path / "none.txt"), "--output", str(tmp_path / "run")])
    assert err.value.code == 1 and "none.txt" in capsys.readouterr().err and not (tmp_path / "run").exists()
