"""Ctrl-C and SIGTERM for long commands: acknowledged at once, and never losing a checkpoint.

Python runs a signal handler only between bytecodes, so while the main thread is inside one long
PyTorch call (a bf16 convolution emulated on a CPU without it can take a minute) a Ctrl-C waits
unseen. Here the C-level handler also writes the signal's number to a pipe
(:func:`signal.set_wakeup_fd`), and a small thread blocked on that pipe answers at once:

* in a phase with nothing to save (``phase(..., save=False)``: the speed check), it says so and
  ends the process if the main thread has not stopped by itself within a few seconds;
* while training (``training()``), the first signal is a request: the loop finishes its step (or
  abandons a grid / FID score in progress, which raise :class:`PhaseInterrupted`), writes
  ``last.pt`` and exits. A second signal quits without saving, except while a checkpoint is
  being written (``writing(path)``): that write is finished first, so neither the checkpoint
  being written nor the last good one (checkpoints are replaced atomically) can be lost.

Outside these phases nothing changes: Ctrl-C raises :class:`KeyboardInterrupt` as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

#: Seconds a phase with nothing to save gets to stop by itself before the process is ended.
GRACE_S = 3.0


class PhaseInterrupted(KeyboardInterrupt):
    """Raised in the main thread to abandon an optional phase (a grid, an FID score) once a stop
    was asked for; the training loop catches it and saves."""


class Interrupts:
    """The process's SIGINT/SIGTERM handling; use the module-level :data:`STATE` through
    :func:`installed`, :func:`phase`, :func:`training`, :func:`abortable` and :func:`writing`."""

    def __init__(self) -> None:
        self.received: int | None = None
        """the first signal received in the current training (None: none)"""
        self.mode = "default"
        self.phase_name = ""
        self.abortable = False
        self.write_path: Path | None = None
        self.quit_after_write = False
        self.last_good: str = ""
        self.count = 0
        self._lock = threading.Lock()
        self._pipe: tuple[int, int] | None = None
        self._old: dict[int, Any] = {}
        self._old_fd = -1
        self._phase_done = threading.Event()

    # --- installing -------------------------------------------------------------------------
    def install(self) -> bool:
        """Install the handlers and the watcher thread (main thread only; False elsewhere)."""
        if self._pipe is not None or threading.current_thread() is not threading.main_thread():
            return False
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:
            os.close(r)
            os.close(w)
            return False
        self._pipe = (r, w)
        # SIGINT only: SIGTERM keeps its default (end the process) outside training and the
        # speed check, which take it over themselves (_take_sigterm)
        self._old[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
        threading.Thread(target=self._watch, args=(r,), name="facegan-interrupts", daemon=True).start()
        return True

    def uninstall(self) -> None:
        if self._pipe is None:
            return
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        signal.set_wakeup_fd(self._old_fd)
        r, w = self._pipe
        self._pipe = None
        # Only the watcher closes the read end (on the b"" that closing this end gives it): were
        # it closed here, its number could be reused by a file (a checkpoint being read) before
        # the watcher's next read, which would then steal that file's bytes.
        os.close(w)

    # --- the two halves: C-level wake-up (thread) and Python-level handler (main) -------------
    def _watch(self, r: int) -> None:
        try:
            while True:
                try:
                    data = os.read(r, 64)
                except InterruptedError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for signum in data:
                    if signum in (signal.SIGINT, signal.SIGTERM):
                        self._answer(signum)
        finally:
            with contextlib.suppress(OSError):
                os.close(r)

    def _answer(self, signum: int) -> None:
        """Runs in the watcher thread the moment a signal arrives."""
        with self._lock:
            self.count += 1
            count, mode = self.count, self.mode
        if mode == "nothing-to-save":
            _say(f"facegan: stopping the {self.phase_name} (nothing to save yet)")
            if not self._phase_done.wait(GRACE_S):
                _say("facegan: stopped")
                os._exit(128 + signum)
            return
        if mode != "training":
            return
        if count == 1:
            _say("facegan: stopping: saving last.pt once the current step is done "
                 "(press Ctrl-C again to quit without saving)")
            return
        with self._lock:
            if self.write_path is not None:
                self.quit_after_write = True
                _say(f"facegan: finishing the write of {self.write_path} first, then quitting")
                return
        _say(f"facegan: quit without saving; {self.last_good or 'no checkpoint had been written yet'}")
        os._exit(128 + signum)

    def _handle(self, signum: int, frame: Any) -> None:
        """The Python-level handler (main thread, between bytecodes)."""
        if self.mode == "training":
            if self.received is None:
                self.received = signum
            if self.abortable and self.write_path is None:
                raise PhaseInterrupted
            return
        raise KeyboardInterrupt


STATE = Interrupts()


@contextlib.contextmanager
def _take_sigterm() -> Iterator[None]:
    """SIGTERM handled like Ctrl-C for the length of a phase (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or STATE._pipe is None:
        yield
        return
    old = signal.signal(signal.SIGTERM, STATE._handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _say(text: str) -> None:
    """A line on stderr straight from the watcher thread (no Python buffer, no lock: the main
    thread may be holding them); starts on a fresh line in case a progress bar is drawn."""
    with contextlib.suppress(OSError):
        os.write(2, ("\n" + text + "\n").encode())


@contextlib.contextmanager
def installed() -> Iterator[Interrupts]:
    """For the length of a command: handlers on (when in the main thread), then restored."""
    mine = STATE.install()
    try:
        yield STATE
    finally:
        if mine:
            STATE.uninstall()


@contextlib.contextmanager
def phase(name: str, *, save: bool = False) -> Iterator[None]:
    """A long phase with nothing to save (``save=False``): Ctrl-C is answered at once and the
    process ends within :data:`GRACE_S` seconds even if the main thread is inside a long call."""
    assert not save, "phases that save use training()"
    mine = STATE.install()
    before = STATE.mode, STATE.phase_name
    STATE.mode, STATE.phase_name = "nothing-to-save", name
    STATE._phase_done.clear()
    try:
        with _take_sigterm():
            yield
    finally:
        STATE.mode, STATE.phase_name = before
        STATE._phase_done.set()
        if mine:
            STATE.uninstall()


@contextlib.contextmanager
def training() -> Iterator[Interrupts]:
    """The training loop: the first signal sets ``received`` (the loop polls it), a second quits
    without saving unless a checkpoint is being written."""
    mine = STATE.install()
    before = STATE.mode
    STATE.mode, STATE.received, STATE.count = "training", None, 0
    STATE.quit_after_write, STATE.last_good = False, ""
    try:
        with _take_sigterm():
            yield STATE
    finally:
        STATE.mode, STATE.abortable = before, False
        if mine:
            STATE.uninstall()


@contextlib.contextmanager
def abortable() -> Iterator[None]:
    """Within training: work that a stop request abandons (raises :class:`PhaseInterrupted`)."""
    if STATE.received is not None and STATE.mode == "training":
        raise PhaseInterrupted
    before = STATE.abortable
    STATE.abortable = True
    try:
        yield
    finally:
        STATE.abortable = before


@contextlib.contextmanager
def writing(path: Path, describe: str) -> Iterator[None]:
    """Writing a checkpoint: a second signal waits for the write to finish. ``describe``: what
    the checkpoint is once written (named when the user later quits without saving)."""
    with STATE._lock:
        STATE.write_path = path
    try:
        yield
        STATE.last_good = f"the last checkpoint written stays: {describe}"
    finally:
        with STATE._lock:
            STATE.write_path = None
            quit_now = STATE.quit_after_write
        if quit_now:
            sys.stderr.flush()
            raise KeyboardInterrupt
