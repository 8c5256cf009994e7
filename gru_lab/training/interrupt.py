"""Ctrl-C (SIGINT) remembered as an event as well as raised, so that a KeyboardInterrupt Python swallows still stops.

A KeyboardInterrupt that lands while the main thread runs a finalizer or a weakref callback (TensorFlow and Keras
run many) is reported as ignored and lost: a training process would then train on to its last epoch, and a
worker asked to stop would be killed after its grace period instead. The loops that matter check the event too:
the executor's pool of runs, and a run's fit (training.callbacks.StopWhenPressed)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def remembered() -> Iterator[threading.Event]:
    """An event set by every Ctrl-C (SIGINT) inside the block, besides the KeyboardInterrupt it raises as before.
    Only the main thread receives signals and may set their handlers: elsewhere the event is never set."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # a handler set outside Python: leave it alone
        yield pressed
        return

    def on_sigint(signum, frame):
        pressed.set()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)
