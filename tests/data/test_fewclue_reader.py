"""FewCLUE reader: every task, fold, few_all, test_public and unlabeled file, row counts from SOURCE.md, label sets,
task-specific fields, and typed errors."""

from __future__ import annotations

import pytest

from kexue.data.readers.fewclue import FEWCLUE_TASKS, fewclue_label_names, fewclue_labels, read_fewclue
from kexue.errors import ConfigError, DataFormatError

# train_k / dev_k / train_few_all / dev_few_all / test_public / unlabeled, from fewclue/SOURCE.md
ROWS = {"eprstmt": (32, 32, 160, 160, 610, 19565), "tnews": (240, 240, 1185, 1098, 2010, 20000),
        "iflytek": (928, 690, 3024, 1373, 1749, None), "csldcp": (536, 536, 2036, 2068, 1784, None),
        "bustm": (32, 32, 160, 160, 1772, 4251), "ocnli": (32, 32, 160, 160, 2520, None),
        "csl": (32, 32, 160, 160, 2838, None), "cluewsc": (32, 32, 160, 159, 976, None),
        "chid": (42, 42, 202, 202, 2002, 7585)}
NUM_LABELS = {"eprstmt": 2, "tnews": 15, "iflytek": 119, "csldcp": 67, "bustm": 2, "ocnli": 3, "csl": 2,
              "cluewsc": 2, "chid": 7}


@pytest.mark.parametrize("task", FEWCLUE_TASKS)
def test_every_file_of_every_task(task, kexue_data):
    train_k, dev_k, train_all, dev_all, test, unlabeled = ROWS[task]
    assert len(fewclue_labels(task, kexue_data)) == NUM_LABELS[task]
    for fold in range(5):
        assert len(read_fewclue(task, "train", fold, kexue_data)) == train_k
    assert len(read_fewclue(task, "dev", 0, kexue_data)) == dev_k
    assert len(read_fewclue(task, "train", "few_all", kexue_data)) == train_all
    assert len(read_fewclue(task, "dev", "few_all", kexue_data)) == dev_all
    rows = read_fewclue(task, "test", root=kexue_data)
    assert len(rows) == test and all(r.label is not None for r in rows)
    assert all((r.text_b is not None) == (task in ("bustm", "ocnli", "csl")) for r in rows)
    if unlabeled is None:
        with pytest.raises(ConfigError, match="unlabeled.json"):
            read_fewclue(task, "unlabeled", root=kexue_data)
    else:
        rows = read_fewclue(task, "unlabeled", root=kexue_data)
        assert len(rows) == unlabeled and all(r.label is None for r in rows)


def test_task_fields(kexue_data):
    first = read_fewclue("eprstmt", "train", 0, kexue_data)[0]
    assert first.label_name == "Negative" and first.label == 0 and first.text_a.startswith("物流很快")
    tnews = read_fewclue("tnews", "train", 0, kexue_data)[0]
    assert tnews.label_name == "102" and fewclue_label_names("tnews", kexue_data)[tnews.label] == "娱乐"
    ifly = read_fewclue("iflytek", "train", 0, kexue_data)[0]
    assert fewclue_label_names("iflytek", kexue_data)[ifly.label] == "公共交通" and ifly.label == 8
    csl = read_fewclue("csl", "train", 0, kexue_data)[0]
    assert csl.text_b == "无线传感器网络，数据聚集，物联网，近似查询" and csl.label_name == "1"
    wsc = read_fewclue("cluewsc", "train", 0, kexue_data)[0]
    assert wsc.spans == ("树叶", "他") and wsc.label_name == "false" and wsc.label == 0
    chid = read_fewclue("chid", "train", 0, kexue_data)[0]
    assert len(chid.candidates) == 7 and chid.label == 1 and "#idiom#" in chid.text_a
    ocnli = read_fewclue("ocnli", "train", 0, kexue_data)[0]
    assert ocnli.label_name == "neutral" and ocnli.label == 1


def test_errors(kexue_data, tmp_path):
    with pytest.raises(ConfigError, match="--task"):
        read_fewclue("afqmc", "train", 0, kexue_data)
    with pytest.raises(ConfigError, match="--fold"):
        read_fewclue("eprstmt", "train", 7, kexue_data)
    folder = tmp_path / "fewclue" / "eprstmt"
    folder.mkdir(parents=True)
    (folder / "dev_few_all.json").write_text('{"sentence": "好", "label": "Positive"}\n', encoding="utf-8")
    (folder / "train_0.json").write_text('{"sentence": "好", "label": "Positive"}\n{"sentence": "差", "label": '
                                         '"Neutral"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train_0.json:2: label"):
        read_fewclue("eprstmt", "train", 0, tmp_path)
    (folder / "train_1.json").write_text('{"sentence": "好", "label": "Positive"}\n{"sentence": \n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train_1.json:2: invalid JSON"):
        read_fewclue("eprstmt", "train", 1, tmp_path)
