"""The pretraining corpus builder: no dev/test text in the output, deduplication, a manifest of training files."""

from __future__ import annotations

import json
import re

import pytest

from kexue.data.corpus import EVAL_FILES, PRETRAIN_SOURCES, Source, build_corpus, split_sentences
from kexue.errors import ConfigError, DataFormatError


def norm(s: str) -> str:
    return re.sub(r"\s+", "", s).lower()


@pytest.fixture(scope="module")
def built(kexue_data, tmp_path_factory):
    """The corpus from the first 300 records of every source file, through the CLI (evaluation files in full)."""
    from kexue.cli import main

    out = tmp_path_factory.mktemp("corpus") / "zh.txt"
    main(["pretrain-corpus", "--output", str(out), "--data-root", str(kexue_data), "--limit", "300"])
    lines = out.read_text(encoding="utf-8").split("\n")
    manifest = json.loads((out.parent / "zh.txt.manifest.json").read_text(encoding="utf-8"))
    return lines, manifest


def _eval_texts_independently(root):
    """Texts of the main evaluation splits, read here with plain per-format code (not the module's reader)."""
    texts = []
    for rel, cols in (("lcqmc/test.txt", (0, 1)), ("lcqmc/dev.txt", (0, 1)), ("afqmc/dev.txt", (0, 1)),
                      ("atec/ATEC.valid.data", (0, 1)), ("atec/ATEC.test.data", (0, 1)), ("bq/dev.tsv", (0, 1)),
                      ("stsb_zh/STS-B.test.data", (0, 1)), ("stsb_zh/STS-B.valid.data", (0, 1)),
                      ("sentiment_zh/sentiment.test.data", (0,)), ("sentiment_zh/sentiment.valid.data", (0,)),
                      ("lcsts_clge/val.tsv", (0, 1)), ("lcsts_clge/test.tsv", (0, 1))):
        for line in (root / rel).read_text(encoding="utf-8").split("\n"):
            parts = line.split("\t")
            texts.extend(parts[c] for c in cols if c < len(parts))
    for rel, keys in (("cluener2020/dev.json", ("text",)), ("simclue_sample/test_public.json",
                                                            ("sentence1", "sentence2")),
                      ("kgclue/dev.json", ("question",)), ("cmeie_subset/CMeIE_dev.json", ("text",)),
                      *((f"fewclue/{t}/test_public.json", ("sentence", "sentence1", "sentence2", "content", "abst",
                                                           "text"))
                        for t in ("eprstmt", "tnews", "bustm", "ocnli", "csl", "csldcp", "iflytek", "cluewsc"))):
        for line in (root / rel).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                record = json.loads(line)
                texts.extend(record[k] for k in keys if isinstance(record.get(k), str))
    chars = []
    for line in (root / "people_daily_ner/example.dev").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            chars.append(line.split()[0])
        elif chars:
            texts.append("".join(chars))
            chars = []
    return texts


def test_no_sentence_of_a_dev_or_test_split_in_the_output(built, kexue_data):
    lines, manifest = built
    out = {norm(s) for s in lines if s.strip()}
    assert len(out) > 3000
    checked = 0
    for text in _eval_texts_independently(kexue_data):
        whole = norm(text)
        first = norm(re.split(r"(?<=[。！？])", text)[0])          # first sentence of a passage
        assert whole not in out, text
        assert len(first) < 2 or first not in out, text
        checked += 1
    assert checked > 50_000
    by_name = {s["name"]: s for s in manifest["sources"]}
    # the slices did contain evaluation text, so the check had something to catch
    assert by_name["afqmc_train"]["dropped_eval_overlap"] > 50
    assert sum(s["dropped_eval_overlap"] for s in manifest["sources"]) > 100


def test_simclue_corpus_sentences_shared_with_lcqmc_test_are_dropped(kexue_data, tmp_path):
    corpus = [line.strip() for line in (kexue_data / "simclue_sample/corpus_1w.txt").read_text(
        encoding="utf-8").splitlines()]
    lcqmc_test = set()
    for line in (kexue_data / "lcqmc/test.txt").read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        a, b, _ = line.split("\t")
        lcqmc_test.update((norm(a), norm(b)))
    shared = {norm(s) for s in corpus} & lcqmc_test
    assert len(shared) >= 100                               # SOURCE.md: 101 sentences
    source = next(s for s in PRETRAIN_SOURCES if s.name == "simclue_corpus")
    report = build_corpus(kexue_data, tmp_path / "c.txt", sources=[source], eval_files={"lcqmc/test.txt": "tsv"})
    written = {norm(s) for s in (tmp_path / "c.txt").read_text(encoding="utf-8").splitlines() if s.strip()}
    assert not (written & lcqmc_test)
    assert report.sources[0].dropped_eval_overlap >= len(shared)
    assert report.sentences > 8000


def test_manifest_lists_only_training_and_unlabeled_files(built, kexue_data):
    _, manifest = built
    used = manifest["files_used"]
    assert "zh_raw_sentences/zhwiki_bert_sampled.txt" in used and "ted_en_zh_sample/parallel_corpus_en_zh.txt" in used
    assert {f"fewclue/{t}/unlabeled.json" for t in ("bustm", "chid", "eprstmt", "tnews")} <= set(used)
    for rel in used:
        name = rel.rsplit("/", 1)[-1]
        assert not re.search(r"(dev|test|valid|val)[._]", name), rel
        assert rel not in EVAL_FILES
        assert (kexue_data / rel).is_file()
    assert {s["role"] for s in manifest["sources"]} <= {"raw", "unlabeled", "train"}
    assert manifest["sentences"] == sum(s["sentences"] for s in manifest["sources"]) > 0
    assert manifest["characters"] > manifest["sentences"] * 5


def test_every_chinese_evaluation_file_is_checked(kexue_data):
    cjk = re.compile(r"[\u4e00-\u9fff]")
    english = ("conll2003", "sst2", "stsb_en", "sts12_16_en", "wiki1m_en_prefix")
    missing = []
    for path in sorted(kexue_data.rglob("*")):
        rel = path.relative_to(kexue_data).as_posix()
        if not path.is_file() or rel.split("/")[0] in english or path.name == "SOURCE.md":
            continue
        if re.search(r"(dev|test|valid|val|sample)", path.name, re.I) and "train" not in path.name:
            head = path.read_text(encoding="utf-8", errors="replace")[:4000]
            if cjk.search(head) and rel not in EVAL_FILES and not rel.startswith(("cail2020", "zh_raw_sentences/zh",
                                                                                  "zh_raw_sentences/CLUE")):
                missing.append(rel)
    assert not missing


def test_dedup_and_blocking_on_hand_made_files(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text(
        "今天天气很好。我们去公园吧！\n明天 会下雨。\n\n今天天气很好。\n这句话在测试集里。\n好\n\n明天会下雨。\n",
        encoding="utf-8")
    (tmp_path / "raw" / "b.tsv").write_text("今天天气很好。\t第二列\n这句话在测试集里。这句不在。\tx\n",
                                            encoding="utf-8")
    (tmp_path / "evalset").mkdir()
    (tmp_path / "evalset" / "test.tsv").write_text("这句话在测试集里。\t1\n", encoding="utf-8")
    sources = [Source("docs", ("raw/a.txt",), "documents", role="raw"),
               Source("pairs", ("raw/b.tsv",), "tsv", (0,))]
    report = build_corpus(tmp_path, tmp_path / "out.txt", sources=sources, eval_files={"evalset/test.tsv": "tsv"})
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == (
        "今天天气很好。\n我们去公园吧！\n明天 会下雨。\n\n这句不在。\n")
    docs, pairs = report.sources
    assert (docs.documents, docs.sentences, docs.dropped_duplicates, docs.dropped_eval_overlap,
            docs.dropped_other) == (1, 3, 2, 1, 1)
    assert (pairs.sentences, pairs.dropped_duplicates, pairs.dropped_eval_overlap) == (1, 1, 1)
    assert docs.characters == len("今天天气很好。我们去公园吧！明天会下雨。")


def test_sentence_splitting_keeps_closing_quotes():
    assert split_sentences("他说：“好。”然后走了！还有吗？没有") == ["他说：“好。”", "然后走了！", "还有吗？", "没有"]


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="evaluation"):
        build_corpus(tmp_path, tmp_path / "o.txt", sources=[Source("x", ("lcqmc/test.txt",), "tsv", (0,))])
    with pytest.raises(ConfigError, match="role"):
        build_corpus(tmp_path, tmp_path / "o.txt", sources=[Source("x", ("a.txt",), "lines", role="dev")],
                     eval_files={})
    with pytest.raises(DataFormatError, match="not found"):
        build_corpus(tmp_path, tmp_path / "o.txt", sources=[], eval_files={"nope/test.tsv": "tsv"})
    (tmp_path / "bad.tsv").write_text("only one column\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.tsv:1"):
        build_corpus(tmp_path, tmp_path / "o.txt", sources=[Source("x", ("bad.tsv",), "tsv", (0, 1))],
                     eval_files={})
