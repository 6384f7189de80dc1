"""Writes the queued rows when the process is told to stop with SIGTERM.

Python's default SIGTERM action kills the process without running ``atexit``, so
under ``app.run()`` or waitress the rows still queued would be lost. A handler of
ours writes them first and then lets SIGTERM do what it would have done. A handler
the host installed before us (gunicorn's worker, the app's own) is chained to, never
replaced: it decides how to exit, and ``atexit`` writes the queue on that exit.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import typing as t
from types import FrameType

from . import writer

logger = logging.getLogger("flask_statistics")

_Handler = t.Callable[[int, FrameType | None], t.Any]

_installed = False
_previous: _Handler | int | None = None


def install() -> None:
    """Write every app's queue on SIGTERM, then exit as SIGTERM would have.

    Safe to call more than once: the handler is installed at most once per process.
    Outside the main thread (where signal handlers cannot be set) it does nothing.
    """
    global _installed, _previous
    if _installed or not hasattr(signal, "SIGTERM"):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        # Leave the process deaf to SIGTERM at the C level, as its owner asked;
        # a Python handler would also stop exec'd children from inheriting it.
        return
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main interpreter
        return
    _previous = previous
    _installed = True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous
    if callable(previous):
        previous(signum, frame)
        return
    # The default action: restore it first, so a second SIGTERM while the queues
    # are written ends the process at once, as an impatient operator expects.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        writer.stop_all()
    except Exception:
        logger.exception("statistics writer failed while stopping on SIGTERM")
    # Die by the signal itself, so the exit status still says "killed by SIGTERM".
    os.kill(os.getpid(), signal.SIGTERM)
