"""Text-line input of encode / predict: one reader for stdin and --input, every refusal naming <stdin> or the file
and the line, without a traceback and without writing output."""

from __future__ import annotations

import io

import numpy as np
import pytest

from kexue.cli.inputs import read_text_lines, split_text_lines
from kexue.errors import ConfigError, DataFormatError

from _cli import run_cli

TEXTS = b"A man is playing a flute.\nA dog runs.\n"


def _encode(model_dir, stdin: bytes = b"", *extra: str):
    return run_cli(["encode", "--model", str(model_dir), *extra], stdin=stdin)


def test_reader_rules_by_hand():
    assert split_text_lines(b"a\r\nb c\n", "<stdin>") == ["a", "b c"]
    assert split_text_lines(b"\xef\xbb\xbfa\nb", "f") == ["a", "b"]           # BOM dropped, no final newline
    assert split_text_lines(b"a\nb\n\n", "f") == ["a", "b"]                  # one trailing blank line
    assert split_text_lines("a\nb\n \n", "f") == ["a", "b"]                  # text streams too
    with pytest.raises(DataFormatError) as err:
        split_text_lines(b"a\n\nb\n", "f")
    assert (err.value.path, err.value.line) == ("f", 2)
    with pytest.raises(DataFormatError) as err:
        split_text_lines(b"ok\n\xe4\xb8\nok\n", "<stdin>")
    assert (err.value.path, err.value.line) == ("<stdin>", 2) and "0xe4" in str(err.value)
    with pytest.raises(DataFormatError, match="empty input"):
        split_text_lines(b"\n\n", "<stdin>")


def test_stdin_and_file_read_alike(tmp_path):
    src = tmp_path / "in.txt"
    for data in (TEXTS, TEXTS + b"\n", TEXTS.replace(b"\n", b"\r\n")):
        src.write_bytes(data)
        assert read_text_lines(src) == read_text_lines(None, stdin=io.BytesIO(data)) == \
            ["A man is playing a flute.", "A dog runs."]


def test_encode_trailing_blank_line_same_on_stdin_and_file(tmp_path, tiny_bert_dir):
    src = tmp_path / "in.txt"
    src.write_bytes(TEXTS + b"\n")
    from_file = _encode(tiny_bert_dir, b"", "--input", str(src), "--output", str(tmp_path / "f.npy"))
    from_stdin = _encode(tiny_bert_dir, TEXTS + b"\n")
    assert from_file.code == 0 and from_stdin.code == 0, from_file.stderr + from_stdin.stderr
    streamed = np.load(io.BytesIO(from_stdin.stdout))
    assert streamed.shape == (2, 32) and np.array_equal(streamed, np.load(tmp_path / "f.npy"))


@pytest.mark.parametrize("stdin,where", [
    (b"", "<stdin>: expected one text per line, found no text"),
    (b"first\n\xff\xfe bad\n", "<stdin>:2: expected UTF-8"),
    (b"first\n\nthird\n", "<stdin>:2: expected one text per line, found a blank line"),
])
def test_encode_bad_stdin_is_one_line(tiny_bert_dir, stdin, where):
    result = _encode(tiny_bert_dir, stdin)
    assert result.code == 1 and result.stdout == b""
    assert result.stderr.startswith("error: ") and where in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_encode_bad_file_names_file_and_line(tmp_path, tiny_bert_dir):
    src = tmp_path / "in.txt"
    src.write_bytes(b"one\ntwo\nthr\xc3ee\n")
    out = tmp_path / "v.npy"
    result = _encode(tiny_bert_dir, b"", "--input", str(src), "--output", str(out))
    assert result.code == 1 and f"{src}:3: expected UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_encode_missing_or_folder_input(tmp_path, tiny_bert_dir, kind):
    target = tmp_path / ("nope.txt" if kind == "missing" else "adir")
    if kind == "folder":
        target.mkdir()
    result = _encode(tiny_bert_dir, b"", "--input", str(target), "--output", str(tmp_path / "v.npy"))
    assert result.code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: --input {target}: ")
    assert ("no such file" if kind == "missing" else "is a folder") in result.stderr
    assert not (tmp_path / "v.npy").exists()


def test_reader_errors_are_typed(tmp_path):
    with pytest.raises(ConfigError, match="--input"):
        read_text_lines(tmp_path / "absent.txt")


@pytest.mark.parametrize("command", ["classify", "ner", "relation", "event"])
def test_predict_commands_share_the_reader(tmp_path, command):
    # the input is read (and refused) before the model is loaded, so no trained model is needed
    result = run_cli(["predict", command, "--model", str(tmp_path / "no-model")], stdin=b"ok\n\xff\n")
    assert result.code == 1 and "<stdin>:2: expected UTF-8" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(["predict", command, "--model", str(tmp_path / "no-model")], stdin=b"")
    assert result.code == 1 and "found no text" in result.stderr
