"""The typer application and its command groups; ``main`` is the console-script entry point.

``main`` owns the exit status, so that scripts can rely on it:

- 0: success;
- 1: a kexue error (:class:`~kexue.errors.KexueError`: one line ``error: ...`` naming the flag or file:line), an
  OS error naming its path (a missing folder, a full disk, no permission), or any other failure (one line and a
  hint to rerun with ``--debug``);
- 2: a usage error (no command, an unknown command or option, a missing argument, a value of the wrong type):
  click's usage message, as every click/typer tool prints it;
- 130: interrupted (Ctrl-C).

``kexue --debug ...`` or ``KEXUE_DEBUG=1`` prints the full traceback as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from kexue.errors import KexueError

app = typer.Typer(help="kexue: the NLP techniques of kexue.fm as tested units and recipes.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
train_app = typer.Typer(help="Train a model with a recipe.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a trained model.", no_args_is_help=True)
predict_app = typer.Typer(help="Run a trained model on text lines.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(predict_app, name="predict")

DEBUG_FLAG = "--debug"
DEBUG_ENV = "KEXUE_DEBUG"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(DEBUG_FLAG, help=f"On an error also print the Python traceback "
                                                         f"(or set {DEBUG_ENV}=1).")] = False,
) -> None:
    # ``main`` reads --debug from the arguments before click runs (it must know it when click itself fails);
    # declaring it here makes click accept it and list it in ``kexue --help``.
    del debug


def _register() -> None:
    # Imported for their side effect of adding commands to the groups above.
    from kexue.cli import analyze, classify, extraction, generate, match, pretrain, seq2seq, simcse, sts  # noqa: F401
    from kexue.cli import prompting  # noqa: F401
    from kexue.cli import summarize  # noqa: F401
    from kexue.cli import simbert  # noqa: F401


def _click_modules() -> list:
    """The click packages whose exceptions typer may raise: the copy bundled in typer (typer >= 0.16 ships its
    own) and the standalone ``click`` package, whichever exist."""
    import typer.core

    modules = []
    bundled = getattr(typer.core, "_click", None)
    if bundled is not None:
        modules.append(bundled)
    try:
        import click
    except ImportError:  # pragma: no cover - typer without standalone click
        pass
    else:
        if click not in modules:
            modules.append(click)
    return modules


def _exception_types(name: str) -> tuple[type[BaseException], ...]:
    return tuple(getattr(m.exceptions, name) for m in _click_modules() if hasattr(m.exceptions, name))


def debug_requested(args: list[str], environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether ``--debug`` is among the global options (those before the command name) or ``KEXUE_DEBUG`` is set
    to a true value (``1``, ``true``, ``yes``)."""
    if environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    for arg in args:
        if arg == DEBUG_FLAG:
            return True
        if not arg.startswith("-"):
            return False  # the command name: what follows belongs to the command
    return False


def _error(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)


def _os_error_message(err: OSError) -> str:
    what = err.strerror or type(err).__name__
    names = [n for n in (err.filename, err.filename2) if n is not None]
    return f"{what}: {' -> '.join(str(n) for n in names)}" if names else f"{what} ({err})"


def main(argv: list[str] | None = None) -> None:
    """Run the ``kexue`` command line with ``argv`` (default ``sys.argv[1:]``) and exit with the status above.

    Returns normally on success (status 0), so that it can be called in-process.

    Raises:
        SystemExit: with the status above for anything but success.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(args)
    _register()
    usage_errors = _exception_types("ClickException")
    aborts = _exception_types("Abort")
    try:
        status = app(args=args, prog_name="kexue", standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:  # typer turns it into exit status 130 itself; this covers one that escapes
        status = EXIT_INTERRUPTED
    except usage_errors as err:
        if err.format_message().strip():  # typer's rich help (no command given) is already printed
            err.show()
        sys.exit(err.exit_code)
    except aborts:  # click's Abort: end of input at a prompt
        _error("aborted")
        sys.exit(EXIT_ERROR)
    except KexueError as err:
        if debug:
            traceback.print_exc()
        _error(str(err).replace("\n  ", "; ").replace("\n", " "))  # CheckpointError lists keys on lines
        sys.exit(EXIT_ERROR)
    except OSError as err:
        if debug:
            traceback.print_exc()
        _error(_os_error_message(err))
        sys.exit(EXIT_ERROR)
    except Exception as err:
        if debug:
            traceback.print_exc()
            _error(f"{type(err).__name__}: {err}")
        else:
            first = (str(err).strip().splitlines() or [""])[0]
            _error(f"{type(err).__name__}: {first} (unexpected; rerun as `kexue {DEBUG_FLAG} ...` or with "
                   f"{DEBUG_ENV}=1 for the traceback)")
        sys.exit(EXIT_ERROR)
    if status == EXIT_INTERRUPTED:
        typer.echo("interrupted (Ctrl-C); exit status 130", err=True)
    if isinstance(status, int) and not isinstance(status, bool) and status != 0:
        sys.exit(status)
