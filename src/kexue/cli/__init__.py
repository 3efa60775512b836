"""The ``kexue`` command (typer). Each task family registers its commands from its own module."""

from kexue.cli.app import app, main

__all__ = ["app", "main"]
