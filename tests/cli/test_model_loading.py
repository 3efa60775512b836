"""Model-loading refusals through the CLI: one line naming the file, exit 1, no traceback, no fallback."""

from __future__ import annotations

import json
import shutil

from safetensors.torch import load_file, save_file

from _cli import run_cli


def _copy(src, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    return folder


def _set_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_relative_key_bert_is_refused(tmp_path, tiny_bert_dir):
    folder = _copy(tiny_bert_dir, tmp_path)
    _set_config(folder, position_embedding_type="relative_key")
    result = run_cli(["similarity", "a", "b", "--model", str(folder)])
    assert result.code == 1 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"{folder / 'config.json'}" in result.stderr and "relative_key" in result.stderr


def test_unknown_model_type_is_refused(tmp_path, tiny_bert_dir):
    folder = _copy(tiny_bert_dir, tmp_path)
    _set_config(folder, model_type="no-such-model")
    result = run_cli(["encode", "--model", str(folder)], stdin=b"a\n")
    assert result.code == 1 and "Traceback" not in result.stderr and result.stdout == b""
    assert "model_type='no-such-model'" in result.stderr


def test_missing_weight_is_one_line_naming_the_key(tmp_path, tiny_bert_dir):
    folder = _copy(tiny_bert_dir, tmp_path)
    state = dict(load_file(str(folder / "model.safetensors")))
    state.pop("encoder.layer.1.output.dense.weight")
    save_file(state, str(folder / "model.safetensors"))
    result = run_cli(["similarity", "a", "b", "--model", str(folder)])
    assert result.code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "encoder.layer.1.output.dense.weight" in result.stderr and "Traceback" not in result.stderr
