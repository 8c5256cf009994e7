"""executor._lines: the worker's output line by line, and a reader that an outside exception can stop while the
worker is silent (how Ray's cancel of a sweep task reaches a thread waiting for a run's next epoch)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import threading
import time

from gru_lab.experiments.executor import _lines


def _worker(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)


def test_lines_come_whole_whatever_the_chunks_and_the_last_one_without_a_newline():
    code = ("import sys, time\n"
            "sys.stdout.write('{\"a\": 1}\\n{\"b\"'); sys.stdout.flush(); time.sleep(0.3)\n"
            "sys.stdout.write(': 2}\\nlast'); sys.stdout.flush()\n")
    proc = _worker(code)
    assert list(_lines(proc, tick=0.05)) == ['{"a": 1}\n', '{"b": 2}\n', "last"]
    assert proc.wait() == 0


def test_an_exception_raised_into_the_reading_thread_lands_while_the_worker_is_silent():
    proc = _worker("import time; print('started', flush=True); time.sleep(60)")
    seen: list[str] = []
    outcome: dict[str, object] = {}

    def read():
        try:
            for line in _lines(proc, tick=0.1):
                seen.append(line)
        except KeyboardInterrupt:
            outcome["stopped"] = time.monotonic()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == ["started\n"]
        raised = time.monotonic()
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(KeyboardInterrupt))
        thread.join(timeout=20)
        # The worker sleeps for a minute and prints nothing more: only the reader's waking can let it stop.
        assert not thread.is_alive() and "stopped" in outcome
        assert outcome["stopped"] - raised < 15
        assert proc.poll() is None  # the worker itself is another matter (executor._stop), still running here
    finally:
        proc.kill()
        proc.wait()
