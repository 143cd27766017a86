"""What ``xstilts run``/``resume`` show: the sweep's progress, not Ray's internals.

By default the driver's own stdout and stderr (file descriptors 1 and 2: Ray's start-up
lines, Tune's, every worker's output Ray forwards, C++ log lines, library warnings) go
to a log file in the sweep folder (``STORAGE/NAME/logs/driver-TIME.log``; a remote
sweep's to a local temporary folder, copied there when the driver ends), through a pipe that a thread copies into the file
(a full disk loses log lines, never the sweep), and the console keeps only what ``Console``
writes to the terminal the command was started from:

- one line per recorded trial (``search.results`` logs it: status, score, tasks);
- on a terminal, a block redrawn in place below them: one row per running trial
  (id, phase, budget step, latest score, real tokens/s), then trials done, running and
  left, the best so far and an ETA;
- elsewhere (CI, a log file), that summary as one plain line after each recorded trial.

``--verbose`` leaves the descriptors alone: everything prints as before, and the
console's lines too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any, Iterator, TextIO

from ray import tune

from search.results import RECORDED_ATTR
from spaces.objective import BUDGET_KEY, DONE_KEY, SCORE_KEY

#: seconds between redraws of the live block on a terminal
REDRAW_S = 1.0


class Console(tune.Callback):
    """The sweep's progress on ``stream``: a Tune callback (trial events) and the sink of the
    ``xstilts`` logger (one line per recorded trial). ``recorded``: trials the sweep had
    recorded before this driver started (a resume). Trials done are the recorded ones: a
    resumed sweep's replay of a trial recorded before ends in Tune again, and is not one
    more trial done."""

    def __init__(self, budget: int, stream: TextIO, *, recorded: int = 0,
                 live: bool | None = None):
        self.budget = budget
        self.stream: TextIO | None = stream
        self.live = stream.isatty() if live is None else live
        self.recorded = recorded
        self.done_here = 0
        self.running: dict[str, dict[str, Any]] = {}
        self.best: tuple[float, str] | None = None
        self.start = time.monotonic()
        self._drawn = 0
        self._last_draw = 0.0

    # Tune pickles its callbacks with the experiment; a restored console is inert
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None, "running": {}, "_drawn": 0}

    # -- Tune's events --------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running[trial.trial_id] = {"phase": "starting"}
        self._draw()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        row = self.running.setdefault(trial.trial_id, {})
        row.update(phase=result.get("phase", row.get("phase", "")),
                   budget=result.get(BUDGET_KEY), score=result.get(SCORE_KEY))
        if result.get("train_tokens_per_s"):
            row["tokens_per_s"] = result["train_tokens_per_s"]
        self._draw()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial)

    def on_step_end(self, iteration, trials, **info) -> None:
        if self.live and time.monotonic() - self._last_draw >= REDRAW_S:
            self._draw()

    def _ended(self, trial) -> None:
        self.running.pop(trial.trial_id, None)
        last = trial.last_result or {}
        score = last.get(SCORE_KEY) if last.get(DONE_KEY) else None  # not a stopped trial's
        if isinstance(score, (int, float)) and (self.best is None or score > self.best[0]):
            self.best = (float(score), trial.trial_id)
        if not self.live:
            self.line(self.summary())
        self._draw(force=True)

    # -- writing --------------------------------------------------------------------------
    def summary(self) -> str:
        done = self.recorded + self.done_here
        left = max(0, self.budget - done - len(self.running))
        best = "-" if self.best is None else f"{self.best[0]:.4f} ({self.best[1]})"
        eta = ""
        if self.done_here:
            per = (time.monotonic() - self.start) / self.done_here
            eta = f", ETA {_duration(per * (left + len(self.running)))}"
        return (f"progress: {done} of {self.budget} done, {len(self.running)} running, "
                f"{left} left; best {best}{eta}")

    def line(self, text: str) -> None:
        """One line above the live block (the block is redrawn below it)."""
        if self.stream is None:
            return
        self._clear()
        self.stream.write(f"xstilts: {text}\n" if not text.startswith("xstilts:") else text + "\n")
        self.stream.flush()
        self._draw(force=True)

    def _clear(self) -> None:
        if self.live and self._drawn and self.stream is not None:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self, force: bool = False) -> None:
        if not self.live or self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_S:
            return
        self._clear()
        rows = [f"  {tid:<10} {r.get('phase', ''):<12} step {r.get('budget') or '-':>7}  "
                f"score {_num(r.get('score'))}  {_num(r.get('tokens_per_s'), '.0f')} tok/s"
                for tid, r in sorted(self.running.items())]
        block = [*rows, "  " + self.summary()]
        self.stream.write("\n".join(block) + "\n")
        self.stream.flush()
        self._drawn = len(block)
        self._last_draw = now

    def close(self) -> None:
        self._clear()
        if self.stream is not None:
            self.stream.flush()


class _ToConsole(logging.Handler):
    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, RECORDED_ATTR, None):  # a trial's row: one more trial done
            self.console.done_here += 1
        self.console.line(record.getMessage())


def _num(value: Any, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _remote(sweep_path: str) -> bool:
    return "://" in sweep_path and not sweep_path.startswith("file://")


def logs_dir(sweep_path: str) -> str:
    """Where the driver's log is written: the sweep folder's ``logs/`` for a local sweep,
    else a local temporary folder (a log file grows line by line, which object stores do
    not do), copied to the sweep's ``logs/`` when the driver ends."""
    if _remote(sweep_path):
        name = sweep_path.rstrip("/").rsplit("/", 1)[-1]
        return os.path.join(tempfile.gettempdir(), "xstilts-logs", name)
    return os.path.join(sweep_path.removeprefix("file://"), "logs")


def _upload(path: str, sweep_path: str) -> None:
    """A remote sweep's driver log, copied to ``STORAGE/NAME/logs/`` (what is there now)."""
    from search.tables import write_atomic

    with contextlib.suppress(OSError), open(path, "rb") as f:
        write_atomic(f"{sweep_path.rstrip('/')}/logs/{os.path.basename(path)}", f.read())


def _drain(read: int, path: str) -> None:
    """Copy what the process and its children print into the log file until the last
    writer closes the pipe. A write that fails (the sweep's storage is full) loses those
    lines, not the sweep: the writers never see the error."""
    try:
        log = open(path, "ab", buffering=0)
    except OSError:
        log = None
    while chunk := os.read(read, 1 << 16):
        if log is not None:
            with contextlib.suppress(OSError):
                log.write(chunk)
    os.close(read)
    if log is not None:
        with contextlib.suppress(OSError):
            log.close()


@contextlib.contextmanager
def quiet_driver(sweep_path: str, budget: int, *, recorded: int = 0,
                 verbose: bool = False) -> Iterator[tuple[Console, TextIO]]:
    """For the duration: the ``Console`` on the terminal, the process's own stdout and
    stderr in the log file (unless ``verbose``), the ``xstilts`` logger's lines through the
    console. Yields the console and the stream the command's own output goes to."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    console = Console(budget, terminal, recorded=recorded)
    path = None
    if not verbose:
        folder = logs_dir(sweep_path)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"driver-{time.strftime('%Y%m%d-%H%M%S')}.log")
        read, write = os.pipe()  # through a thread that may fail to write, not the process
        threading.Thread(target=_drain, args=(read, path), name="xstilts-driver-log",
                         daemon=True).start()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        console.line(f"Ray's and Tune's own output: {path} (--verbose shows it here)")
    logger = logging.getLogger("xstilts")
    handler = _ToConsole(console)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield console, terminal
    finally:
        console.close()
        if path is not None and _remote(sweep_path):
            _upload(path, sweep_path)
        logger.removeHandler(handler)
        logger.propagate = propagate
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        console.stream = None
        terminal.close()
