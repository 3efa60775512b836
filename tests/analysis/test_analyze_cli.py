"""``kexue analyze simsiam|leaderboard|gradient-penalty`` end to end (in-process), and the per-example gradient
norms of :mod:`kexue.analysis.gradient_ratio` against a hand-written computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kexue.analysis.gradient_ratio import example_gradient_norms, summarize
from kexue.cli import main

FEWCLUE = Path(__file__).parent / "data" / "fewclue_readme.md"


def _run(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simsiam_command_prints_the_table_and_plots(tmp_path, capsys):
    code, out, _ = _run(["analyze", "simsiam", "--plot", str(tmp_path / "s.png")], capsys)
    assert code == 0
    assert "(0.6737, 0.3222)" in out and "(0.6127, 0.0048)" in out  # the spec's t = 5 stop-grad, t = 20 full
    assert "limit (phi, theta) = (1.0000, 0.8062)" in out
    assert (tmp_path / "s.png").stat().st_size > 1000
    code, _, err = _run(["analyze", "simsiam", "--times", "1,x"], capsys)
    assert code == 1 and "--times" in err


def test_leaderboard_command(tmp_path, capsys):
    code, out, _ = _run(["analyze", "leaderboard", str(FEWCLUE), "--drop", "score", "--json",
                         str(tmp_path / "lb.json")], capsys)
    assert code == 0 and "Kendall tau" in out
    data = json.loads((tmp_path / "lb.json").read_text())
    human = next(r for r in data["rows"] if r["model"] == "Human")
    assert human["am"] == pytest.approx(742.4 / 9) and human["rank_gm"] == 1
    table = tmp_path / "t.csv"
    table.write_text("model;a;b;extra\nhuman;90,0;88,0;\nbot;93,0;91,0;10,0\n", encoding="utf-8")
    code, _, err = _run(["analyze", "leaderboard", str(table), "--decimal", ","], capsys)
    assert code == 1 and "t.csv:3" in err and "--intersection" in err
    code, out, _ = _run(["analyze", "leaderboard", str(table), "--decimal", ",", "--intersection"], capsys)
    assert code == 0 and "dropped extra" in out
    code, _, err = _run(["analyze", "leaderboard", str(table)], capsys)
    assert code == 1 and "t.csv:2" in err and "--decimal" in err


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 2)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, ids):
        return self.out(torch.tanh(self.emb(ids)).mean(1))


def test_example_gradient_norms_match_manual_autograd():
    torch.manual_seed(0)
    model = _Tiny().double()
    batches = [{"ids": torch.tensor([[1, 2, 3]]), "label": torch.tensor([0])},
               {"ids": torch.tensor([[4, 4]]), "label": torch.tensor([1])}]

    def loss_fn(m, b):
        return nn.functional.cross_entropy(m(b["ids"]), b["label"])

    inp, par, loss = example_gradient_norms(model, loss_fn, batches)
    for k, b in enumerate(batches):  # by hand: the embedding output as an explicit leaf
        e = model.emb(b["ids"]).detach().requires_grad_(True)
        value = nn.functional.cross_entropy(model.out(torch.tanh(e).mean(1)), b["label"])
        (ge,) = torch.autograd.grad(value, [e])
        gp = torch.autograd.grad(loss_fn(model, b), list(model.parameters()))
        assert inp[k] == pytest.approx(float(ge.norm()), rel=1e-12)
        assert par[k] == pytest.approx(float(sum(g.pow(2).sum() for g in gp)) ** 0.5, rel=1e-12)
        assert loss[k] == pytest.approx(float(value.detach()), rel=1e-12)
    row = summarize(5, inp, par, loss)
    assert row.ratio == pytest.approx(float((inp / par).mean()))


def test_gradient_penalty_command_on_a_tiny_run(tmp_path, tiny_bert_dir, kexue_data, capsys, monkeypatch):
    from kexue.data.tokenization import Tokenizer
    from kexue.models import Transformer
    from kexue.tasks.classification_model import SequenceClassifier
    from kexue.train.checkpointing import save_checkpoint

    monkeypatch.setenv("KEXUE_DATA", str(kexue_data))
    run = tmp_path / "run"
    clf = SequenceClassifier(Transformer.from_pretrained(tiny_bert_dir), 2,
                             Tokenizer.from_pretrained(tiny_bert_dir), max_length=32)
    clf.save_pretrained(run / "best")
    for step in (1, 2):
        with torch.no_grad():
            clf.classifier.weight.mul_(2.0)  # a different state per checkpoint
        save_checkpoint(run / "checkpoints", step, {"model": clf.state_dict()}, keep=5)
    code, out, err = _run(["analyze", "gradient-penalty", "--model", str(run), "--data", "sst2", "--examples", "3"],
                          capsys)
    assert code == 0, err
    rows = json.loads((run / "gradient_penalty.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["examples"] == 3
    assert rows[0]["param_norm"] != rows[1]["param_norm"]
    assert (run / "gradient_penalty.png").is_file()
    code, _, err = _run(["analyze", "gradient-penalty", "--model", str(tmp_path / "nothing")], capsys)
    assert code == 1 and "--model" in err
