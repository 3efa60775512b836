"""Graceful Ctrl-C for training loops: the first SIGINT only raises a flag (the loop finishes its step, saves a
checkpoint and stops); a second one stops at once. Installed only in a single process on the main thread, and only
when nobody else (a debugger, a notebook) has replaced Python's default handler."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class GracefulInterrupt:
    """Context manager routing SIGINT to a flag while it is active.

    Args:
        log: called once with a one-line notice at the first Ctrl-C.
        enabled: ``False`` (e.g. several processes) leaves SIGINT alone.

    Attributes:
        requested: whether a Ctrl-C arrived since entering.
    """

    def __init__(self, log: Callable[[str], None], enabled: bool = True) -> None:
        self.log, self.enabled, self.requested = log, enabled, False
        self._previous: Any = None

    def __enter__(self) -> "GracefulInterrupt":
        if (self.enabled and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("interrupt: finishing the current step, then saving a checkpoint (Ctrl-C again to stop at once)")
