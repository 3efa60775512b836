"""The exit status contract of ``kexue``: usage errors 2 (click's usage message), kexue errors 1 (one line naming
the flag), unexpected errors 1 (one line and a --debug hint), --debug / KEXUE_DEBUG=1 tracebacks, Ctrl-C 130."""

from __future__ import annotations

import pytest

from _cli import run_cli, run_subprocess


@pytest.mark.parametrize("args", [[], ["train"], ["eval"], ["predict"]])
def test_no_command_prints_the_help_and_exits_2(args):
    result = run_cli(args)
    assert result.code == 2
    shown = result.stdout.decode() + result.stderr
    assert f"Usage: kexue {' '.join(args)}".strip() in shown and "Commands" in shown
    assert "Traceback" not in shown


@pytest.mark.parametrize("args,message", [
    (["trian"], "No such command 'trian'"),
    (["encode", "--bogus"], "No such option: --bogus"),
    (["similarity", "only-one-sentence"], "Missing argument"),
    (["encode", "--batch-size", "x"], "Invalid value for '--batch-size'"),
    (["train", "sts", "--epochs", "1.5"], "Invalid value for '--epochs'"),
])
def test_usage_errors_exit_2_with_the_usage_message(args, message):
    result = run_cli(args)
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == b""


def test_usage_error_through_the_real_entry_point():
    result = run_subprocess(["encode", "--bogus"])
    assert result.code == 2
    assert "Usage: kexue encode" in result.stderr and "No such option: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_kexue_error_is_one_line_naming_the_flag_exit_1(tmp_path):
    result = run_cli(["train", "sts", "--model", "minilm", "--lr", "0", "--output", str(tmp_path / "run")])
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --lr")
    assert "learning_rate:" not in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_batch_size_message_names_the_flag(tmp_path):
    result = run_cli(["train", "sts", "--model", "minilm", "--batch-size", "0", "--output", str(tmp_path / "run")])
    assert result.code in (1, 2)
    assert "--batch-size" in result.stderr and "batch_size:" not in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def _raise(exc: BaseException):
    def fail(*_args, **_kwargs):
        raise exc
    return fail


def test_unexpected_error_is_one_line_with_a_debug_hint(monkeypatch):
    from kexue.embeddings import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", _raise(RuntimeError("boom\nsecond line")))
    result = run_cli(["similarity", "a", "b"])
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: boom" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    from kexue.embeddings import SentenceEncoder
    from kexue.errors import ConfigError

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", _raise(ConfigError("--model: nope")))
    if how == "env":
        monkeypatch.setenv("KEXUE_DEBUG", "1")
        args = ["similarity", "a", "b"]
    else:
        monkeypatch.delenv("KEXUE_DEBUG", raising=False)
        args = ["--debug", "similarity", "a", "b"]
    result = run_cli(args)
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.stderr and "error: --model: nope" in result.stderr


def test_no_traceback_without_debug(monkeypatch):
    from kexue.embeddings import SentenceEncoder
    from kexue.errors import ConfigError

    monkeypatch.delenv("KEXUE_DEBUG", raising=False)
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", _raise(ConfigError("--model: nope")))
    result = run_cli(["similarity", "a", "b"])
    assert result.code == 1 and result.stderr.strip() == "error: --model: nope"


def test_keyboard_interrupt_exits_130(monkeypatch):
    from kexue.embeddings import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", _raise(KeyboardInterrupt()))
    result = run_cli(["similarity", "a", "b"])
    assert result.code == 130
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr


def test_os_error_names_the_path(monkeypatch, tmp_path):
    from kexue.embeddings import SentenceEncoder

    err = OSError(28, "No space left on device", str(tmp_path / "out.npy"))
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", _raise(err))
    result = run_cli(["similarity", "a", "b"])
    assert result.code == 1
    assert result.stderr.strip() == f"error: No space left on device: {tmp_path / 'out.npy'}"
