"""The typer application and its command groups; ``main`` is the console-script entry point."""

from __future__ import annotations

import sys

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


def _register() -> None:
    # Imported for their side effect of adding commands to the groups above.
    from kexue.cli import classify, extraction, pretrain, sts  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; kexue's typed errors print as one readable line and exit with status 2."""
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except KexueError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as err:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
