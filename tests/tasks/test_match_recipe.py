"""`kexue train match` / `eval match` end to end on a tiny random BERT and slices of the real tasks; the model equals
the unconditioned one at initialisation; save/load round trip; option refusals."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import BertModel

from kexue.cli import main
from kexue.data.tokenization import Tokenizer
from kexue.models.auto import load_encoder
from kexue.nn.conditional_norm import ConditionalLayerNorm
from kexue.tasks.match import binary_scores, evaluate_tasks, make_features, predict
from kexue.tasks.match_data import load_match_tasks
from kexue.tasks.match_model import MatchModel, load_match_model

TASKS = "afqmc,stsb_zh,simclue_sample"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``kexue ARGS`` in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


SMALL = ["--train-limit", "32", "--eval-limit", "24", "--valid-size", "24", "--batch-size", "16", "--max-length", "40",
         "--lr", "1e-3", "--no-progress"]


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, tiny_bert_dir):
    out = tmp_path_factory.mktemp("match") / "run"
    main(["train", "match", "--model", str(tiny_bert_dir), "--tasks", TASKS, "--conditional-ln", "--max-steps", "4",
          "--output", str(out), *SMALL])
    return out


def test_train_match_writes_run_and_reports_the_saved_best(conditional_run, kexue_data):
    results = json.loads((conditional_run / "results.json").read_text())
    assert results["tasks"] == TASKS.split(",") and results["conditional_ln"] is True
    assert results["fit"]["global_step"] == 4
    assert {k: v["train"] for k, v in results["data"].items()} == {t: 32 for t in TASKS.split(",")}
    # the reported test metrics are those of best/ re-read from disk, recomputed here from its predictions
    best = load_match_model(conditional_run / "best")
    assert best.conditional and best.tasks == tuple(TASKS.split(","))
    data = load_match_tasks(best.tasks, valid_size=24, seed=42, train_limit=32, eval_limit=24)
    for i, d in enumerate(data):
        pred = predict(best, make_features(best, d.test, i)).tolist()
        gold = [p[2] for p in d.test]
        tp = sum(p == g == 1 for p, g in zip(pred, gold))
        wrong = sum(p != g for p, g in zip(pred, gold))
        f1 = 100 * 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0
        assert results["after"]["test"][f"{d.name}_f1"] == pytest.approx(f1)
    # the saved backbone is a plain HF BERT (norms unconditioned), readable by transformers itself
    hf = BertModel.from_pretrained(conditional_run / "best")
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in hf.modules()) == 5  # embeddings + 2 per layer
    # trained: W_gamma / W_beta moved, so the tasks now get different outputs for the same pair
    norms = [m for m in best.modules() if isinstance(m, ConditionalLayerNorm)]
    assert len(norms) == 5 and any(m.gamma_dense.weight.abs().sum() > 0 for m in norms)
    feat = make_features(best, data[0].test[:1], 0)[0]
    batch = {k: torch.tensor([feat[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        logits = [best(**batch, task_id=torch.tensor([t])) for t in range(3)]
    assert not torch.equal(logits[0], logits[1]) and not torch.equal(logits[0], logits[2])


def test_conditional_model_equals_plain_model_at_init_for_every_task(tiny_bert_dir):
    tokenizer = Tokenizer.from_pretrained(tiny_bert_dir)
    backbone = load_encoder(tiny_bert_dir)[0]
    torch.manual_seed(1)
    plain = MatchModel(copy.deepcopy(backbone), tokenizer, ("a", "b", "c"), conditional=False, dropout=0.0)
    torch.manual_seed(1)
    cond = MatchModel(copy.deepcopy(backbone), tokenizer, ("a", "b", "c"), conditional=True, dropout=0.0)
    cond.classifier.load_state_dict(plain.classifier.state_dict())
    with torch.no_grad():
        cond.task_embedding.weight.normal_(0, 3.0)  # any condition: W = 0 makes it irrelevant
    plain.eval(), cond.eval()
    ids = torch.randint(5, 1000, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = plain(ids, mask)
        for t in range(3):
            assert torch.equal(cond(ids, mask, task_id=torch.full((3,), t)), expected)


def test_save_load_round_trip_is_exact(tmp_path, tiny_bert_dir):
    tokenizer = Tokenizer.from_pretrained(tiny_bert_dir)
    model = MatchModel(load_encoder(tiny_bert_dir)[0], tokenizer, ("a", "b"), conditional=True).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ConditionalLayerNorm):
                m.gamma_dense.weight.normal_(0, 0.1)
                m.beta_dense.weight.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "m")
    loaded = load_match_model(tmp_path / "m")
    ids, mask, tid = torch.randint(5, 1000, (2, 7)), torch.ones(2, 7, dtype=torch.long), torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask, task_id=tid), model(ids, mask, task_id=tid))
    assert sum(isinstance(m, ConditionalLayerNorm) for m in model.modules()) == 5  # saving restored them


def test_plain_and_single_task_runs(tmp_path, tiny_bert_dir):
    plain, single = tmp_path / "plain", tmp_path / "single"
    main(["train", "match", "--model", str(tiny_bert_dir), "--tasks", "afqmc,stsb_zh", "--no-conditional-ln",
          "--max-steps", "2", "--output", str(plain), *SMALL])
    main(["train", "match", "--model", str(tiny_bert_dir), "--tasks", "stsb_zh", "--no-conditional-ln",
          "--max-steps", "2", "--output", str(single), *SMALL])
    for out, tasks in ((plain, ["afqmc", "stsb_zh"]), (single, ["stsb_zh"])):
        results = json.loads((out / "results.json").read_text())
        assert results["conditional_ln"] is False and results["tasks"] == tasks
        model = load_match_model(out / "best")
        assert not any(isinstance(m, ConditionalLayerNorm) for m in model.modules())
        scores = results["after"]["test"]
        assert scores["f1"] == pytest.approx(sum(scores[f"{t}_f1"] for t in tasks) / len(tasks))


def test_eval_match_on_sohu_scores_both_criteria(conditional_run, kexue_data, capsys):
    path = kexue_data / "sohu2021_subset" / "text2vec" / "dd-test.jsonl"
    code, out, err = run_cli(["eval", "match", "--model", str(conditional_run), "--data", str(path), "--task",
                              "afqmc"], capsys)
    assert code == 0, err
    report = json.loads(out)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    best = load_match_model(conditional_run / "best")
    pred = predict(best, make_features(best, [(r["sentence1"], r["sentence2"], 0) for r in rows], 0)).tolist()
    gold_a = [int(r["label"] in (3, 5)) for r in rows]
    gold_b = [int(r["label"] == 5) for r in rows]
    assert report["pairs"] == 500 and report["layout"] == "graded"
    assert report["criteria"]["A"] == pytest.approx(binary_scores(pred, gold_a))
    assert report["criteria"]["B"] == pytest.approx(binary_scores(pred, gold_b))
    assert report["score"] == pytest.approx((report["criteria"]["A"]["f1"] + report["criteria"]["B"]["f1"]) / 2)
    code, _out, err = run_cli(["eval", "match", "--model", str(conditional_run), "--data", str(path)], capsys)
    assert code == 1 and err.startswith("error: --task")


def test_evaluate_tasks_means(tiny_bert_dir):
    tokenizer = Tokenizer.from_pretrained(tiny_bert_dir)
    model = MatchModel(load_encoder(tiny_bert_dir)[0], tokenizer, ("x", "y"), conditional=False).eval()
    pairs = [("a cat", "a dog", 1), ("one", "two", 0), ("red", "blue", 1)]
    metrics = evaluate_tasks(model, {"x": make_features(model, pairs, 0), "y": make_features(model, pairs[:2], 1)})
    assert metrics["f1"] == pytest.approx((metrics["x_f1"] + metrics["y_f1"]) / 2)
    assert metrics["accuracy"] == pytest.approx((metrics["x_accuracy"] + metrics["y_accuracy"]) / 2)


@pytest.mark.parametrize("extra, flag", [
    (["--tasks", "afqmc,nope"], "--tasks"),
    (["--tasks", "afqmc,afqmc"], "--tasks"),
    (["--tasks", "afqmc", "--conditional-ln"], "--conditional-ln"),
    (["--valid-size", "1"], "--valid-size"),
    (["--cond-dim", "0"], "--cond-dim"),
    (["--dropout", "1.5"], "--dropout"),
    (["--train-limit", "1"], "--train-limit"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, tiny_bert_dir, extra, flag, capsys):
    out = tmp_path / "refused"
    args = ["train", "match", "--model", str(tiny_bert_dir), "--output", str(out), "--no-progress"]
    if "--tasks" not in extra:
        args += ["--tasks", "afqmc,stsb_zh"]
    code, _out, err = run_cli(args + extra, capsys)
    assert code == 1
    assert err.startswith(f"error: {flag}") and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
