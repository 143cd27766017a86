"""A training ledger and fault injection, for chaos tests; both off unless asked for.

``XSTILTS_LEDGER=/path/ledger.jsonl``: rank 0 of every Train run appends one
JSON line when a training segment starts (``event: start`` with the step it
starts from, 0 for a fresh run) and when it ends, and one per injected fault.
A finished trial that was trained twice shows as a second ``start`` at step 0,
or a ``start`` after its last ``end``.

``XSTILTS_FAULTS='{"#3": "oom:target:4:1", ...}'``: a JSON object from a trial
(``#k``: the k-th Train run to start in the ledger; a suffix of the run name,
``train-<tune trial id>``; or ``*``, every run) to ``kind:phase:step[:times]``.
At that step of that phase the trial fails:

- ``oom`` raises ``torch.OutOfMemoryError`` (what CUDA raises; transient),
- ``crash`` raises ``RuntimeError`` (transient),
- ``exception`` raises ``ValueError`` (a bug or bad data; permanent),
- ``nan`` makes the loss NaN, so the loop's own non-finite check fires,
- ``connection`` raises ``ConnectionError`` (a dropped connection; transient).

``times`` (default: always) counts this run's earlier faults in the ledger,
so ``:1`` fails once and lets the retry through.

Loading faults: ``kind:load:TASK[:times]`` fails each attempt at loading any
split of ``TASK`` (``trainables.data.load_rows``, which retries transient
failures in-process), e.g. ``{"*": "connection:load:demo-sentiment:4"}``: the
first four attempts of every run raise ``ConnectionError``. ``times`` counts
this run's earlier load faults of that task; the run is the Train run loading
(a trial's retries share it), ``""`` outside Ray Train.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

KINDS = ("oom", "crash", "exception", "nan", "connection")


def ledger(run: str, event: str, **fields: Any) -> None:
    path = os.environ.get("XSTILTS_LEDGER")
    if not path:
        return
    line = json.dumps({"run": run, "event": event, "pid": os.getpid(), "time": time.time(), **fields})
    # one short O_APPEND write per line: lines from concurrent trials do not interleave
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_ledger(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def fault_for(run: str, phase: str, step: int) -> str | None:
    """The fault kind to inject at ``step`` (1-based) of ``phase`` in ``run``, if any."""
    raw = os.environ.get("XSTILTS_FAULTS")
    if not raw:
        return None
    for key, spec in json.loads(raw).items():
        if not _is(run, key):
            continue
        kind, f_phase, f_step, *rest = spec.split(":")
        if kind not in KINDS:
            raise ValueError(f"XSTILTS_FAULTS: kind {kind!r} is unknown; choose one of {KINDS}")
        if f_phase != phase or int(f_step) != step:
            continue
        if rest:
            done = sum(1 for e in read_ledger(os.environ.get("XSTILTS_LEDGER", ""))
                       if e["run"] == run and e["event"] == "fault")
            if done >= int(rest[0]):
                continue
        ledger(run, "fault", kind=kind, phase=phase, step=step)
        return kind
    return None


def load_fault(task: str) -> None:
    """Raise the loading fault ``XSTILTS_FAULTS`` asks for at this attempt to load ``task``."""
    raw = os.environ.get("XSTILTS_FAULTS")
    if not raw:
        return
    run = _current_run()
    for key, spec in json.loads(raw).items():
        kind, f_phase, f_task, *rest = spec.split(":")
        if f_phase != "load" or f_task != task or not _is(run, key):
            continue
        if kind not in KINDS or kind == "nan":
            raise ValueError(f"XSTILTS_FAULTS: {spec!r}: a load fault is one of "
                             f"{[k for k in KINDS if k != 'nan']}")
        if rest:
            done = sum(1 for e in read_ledger(os.environ.get("XSTILTS_LEDGER", ""))
                       if e["run"] == run and e["event"] == "fault"
                       and e.get("phase") == "load" and e.get("task") == task)
            if done >= int(rest[0]):
                continue
        ledger(run, "fault", kind=kind, phase="load", task=task)
        inject(kind, f"loading {task}" + (f" in {run}" if run else ""))


def _current_run() -> str:
    """The name of the Train run this process works for; "" outside a Ray Train worker."""
    import ray.train

    try:
        return ray.train.get_context().get_experiment_name()
    except RuntimeError:  # not inside a training function
        return ""


def _is(run: str, key: str) -> bool:
    if key == "*":
        return True
    if key.startswith("#"):
        order: list[str] = []
        for e in read_ledger(os.environ.get("XSTILTS_LEDGER", "")):
            if e["event"] == "start" and e["run"] not in order:
                order.append(e["run"])
        return run in order and order.index(run) + 1 == int(key[1:])
    return run.endswith(key)


def inject(kind: str, where: str) -> None:
    """Raise what a real fault of ``kind`` raises (``nan`` is handled by the caller)."""
    if kind == "oom":
        import torch  # only here: loading faults need no torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (injected at {where})")
    if kind == "crash":
        raise RuntimeError(f"worker crashed (injected at {where})")
    if kind == "exception":
        raise ValueError(f"bad batch (injected at {where})")
    if kind == "connection":
        raise ConnectionError(f"connection reset by peer (injected at {where})")
