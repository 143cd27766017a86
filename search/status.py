"""Where a sweep stands, read from its storage alone: ``xstilts status STORAGE/NAME``.

Works from any shell or machine that reaches the storage (a folder or a URI such as
s3://) and only reads: the manifest (budget), the driver's lock (who drives it and its
last heartbeat) and the results tables (trials by status, the best, recent errors).

The driver's lock (``xstilts-driver.lock``, written by ``driver_lock``) names its host
and pid and is rewritten every ``HEARTBEAT_S`` seconds with the time. A sweep is
``running`` while its lock is fresh (on the driver's own host: while that pid lives),
``interrupted`` when the lock is stale or gone before the budget is spent, ``finished``
when the trials table holds the whole budget and no driver is at work.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from typing import Any, Iterator

from search.tables import filesystem, read_table, read_text, write_atomic

LOCK_FILE = "xstilts-driver.lock"
#: seconds between the driver's heartbeats; a lock older than ``STALE_AFTER`` heartbeats
#: is a dead driver's
HEARTBEAT_S = 30.0
STALE_AFTER = 3
#: errors listed by ``sweep_status``, the newest first
RECENT_ERRORS = 3


class DrivenError(RuntimeError):
    """Another driver runs this sweep."""


def read_lock(sweep_path: str) -> dict[str, Any] | None:
    """The driver's lock, or None where there is none (or one cut short while written)."""
    text = read_text(f"{sweep_path}/{LOCK_FILE}")
    if text is None:
        return None
    try:
        lock = json.loads(text)
    except ValueError:
        return None
    return lock if isinstance(lock, dict) else None


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def lock_alive(lock: dict[str, Any], *, now: float | None = None) -> bool:
    """Whether the lock's driver is at work: on this host, its pid lives; elsewhere, its
    last heartbeat is younger than ``STALE_AFTER`` heartbeats."""
    if lock.get("host") == socket.gethostname():
        return _pid_alive(lock.get("pid"))
    beat = lock.get("heartbeat")
    now = time.time() if now is None else now
    return isinstance(beat, (int, float)) and now - beat < STALE_AFTER * lock.get(
        "heartbeat_s", HEARTBEAT_S)


def refuse_if_driven(sweep_path: str) -> None:
    """``DrivenError`` while another driver's lock on the sweep is alive (``lock_alive``)."""
    other = read_lock(sweep_path)
    if other is not None and lock_alive(other):
        raise DrivenError(f"another driver (pid {other.get('pid')} on {other.get('host')}) is "
                          f"running the sweep at {sweep_path}; wait for it to end or stop it, "
                          "then resume")


@contextlib.contextmanager
def driver_lock(sweep_path: str, *, heartbeat_s: float = HEARTBEAT_S) -> Iterator[None]:
    """One driver per sweep: ``DrivenError`` while another lives; the lock names this
    driver's host and pid, and a thread rewrites it every ``heartbeat_s`` seconds with the
    time (``sweep_status`` reads it from anywhere); removed when the driver ends."""
    refuse_if_driven(sweep_path)
    path = f"{sweep_path}/{LOCK_FILE}"
    body = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
            "heartbeat_s": heartbeat_s}

    def beat() -> None:
        write_atomic(path, json.dumps({**body, "heartbeat": time.time()}).encode())

    beat()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(heartbeat_s):
            with contextlib.suppress(OSError):  # a missed beat is not worth the sweep
                beat()

    thread = threading.Thread(target=loop, name="xstilts-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        fs, p = filesystem(path)
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(p)


def sweep_status(sweep_path: str) -> dict[str, Any]:
    """The sweep's state, trials by status, best so far, budget left and recent errors
    (plain JSON values; ``format_status`` prints them)."""
    from search.sweep import load_plan

    sweep_path = sweep_path.rstrip("/")
    plan = load_plan(sweep_path)  # FileNotFoundError: no sweep there
    trials = read_table(sweep_path, "trials")
    rows = trials.to_pylist() if trials is not None else []
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    finished = [r for r in rows if r["status"] == "finished" and r.get("objective") is not None]
    best = max(finished, key=lambda r: r["objective"], default=None)
    errors = sorted((r for r in rows if r["status"] == "error"),
                    key=lambda r: r.get("finished_at") or 0, reverse=True)[:RECENT_ERRORS]
    lock = read_lock(sweep_path)
    now = time.time()
    if lock is not None and lock_alive(lock, now=now):
        state = "running"
    elif len(rows) >= plan.sweep.trials:
        state = "finished"
    else:
        state = "interrupted"
    driver = None
    if lock is not None:
        beat = lock.get("heartbeat")
        driver = {"host": lock.get("host"), "pid": lock.get("pid"),
                  "heartbeat_age_s": None if beat is None else round(now - beat, 1)}
    return {
        "path": sweep_path, "state": state, "driver": driver,
        "budget": plan.sweep.trials, "recorded": len(rows),
        "left": max(0, plan.sweep.trials - len(rows)), "counts": counts,
        "best": None if best is None else {
            "trial_id": best["trial_id"], "objective": best["objective"],
            "zs_accuracy": best.get("zs_accuracy"), "zs_ece": best.get("zs_ece"),
            "tasks": list(best.get("config/intermediate_tasks") or [])},
        "errors": [{"trial_id": e["trial_id"],
                    "cause": ((e.get("error") or "").strip().splitlines() or [""])[-1]}
                   for e in errors],
    }


def format_status(s: dict[str, Any]) -> str:
    """``sweep_status`` as lines for a terminal."""
    state = s["state"]
    d = s["driver"]
    if state == "running" and d:
        age = "" if d["heartbeat_age_s"] is None else f", last heartbeat {d['heartbeat_age_s']:.0f} s ago"
        state += f" (driver pid {d['pid']} on {d['host']}{age})"
    elif state == "interrupted":
        state += (" (its driver stopped; continue with: xstilts resume " + s["path"] + ")")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(s["counts"].items())) or "none yet"
    lines = [f"{s['path']}: {state}",
             f"trials: {s['recorded']} of {s['budget']} recorded ({counts}); {s['left']} left"]
    b = s["best"]
    if b:
        lines.append(f"best: {b['trial_id']} objective {_f(b['objective'])}, zero-shot "
                     f"accuracy {_f(b['zs_accuracy'])}, ECE {_f(b['zs_ece'])}; tasks "
                     f"{'+'.join(b['tasks'])}")
    for e in s["errors"]:
        lines.append(f"error: {e['trial_id']}: {e['cause']}")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"
