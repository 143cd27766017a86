"""Faults inside trials: recorded, retried when transient, never stopping the sweep.

Faults are injected into real Ray Train workers through ``XSTILTS_FAULTS``; the
OOM raises ``torch.OutOfMemoryError``, the type CUDA raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from search.results import read_table
from trainables.chaos import read_ledger

pytestmark = pytest.mark.ray

FAST = ["--set", "max_train_examples=96", "--set", "max_eval_examples=64",
        "--set", "batch_size=16", "--set", "eval_every=2",
        "--set", "search.space.intermediate_steps=[10,20,10]",
        "--set", "search.space.batch_size=[16]", "--set", "search.space.target_epochs=[1.0]",
        "--set", "search.asha_grace=0", "--set", "search.concurrency=1",
        "--set", "search.max_failures=2"]

FAULTS = {
    "#1": "nan:target:2",        # NaN loss: fails at once, no retry trains again
    "#2": "oom:target:3:1",      # CUDA OOM once: retried from the step-2 checkpoint
    "#3": "exception:intermediate:3",  # a bug / bad batch: permanent
    "#4": "oom:target:3",        # OOM every time: the retry budget runs out
}                                # #5: no fault


def test_nan_exception_and_oom_are_recorded_retried_and_the_sweep_goes_on(tmp_path, no_ray_here):
    ledger = tmp_path / "ledger.jsonl"
    env = {**os.environ, "XSTILTS_LEDGER": str(ledger), "XSTILTS_FAULTS": json.dumps(FAULTS)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", "demo", "--storage", str(tmp_path / "runs"),
         "--name", "faults", "--trials", "5", *FAST],
        capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    events = read_ledger(str(ledger))
    order: list[str] = []
    for e in events:
        if e["event"] == "start" and e["run"] not in order:
            order.append(e["run"])
    assert len(order) == 5
    rows = {r["trial_id"]: r for r in read_table(str(tmp_path / "runs" / "faults"), "trials").to_pylist()}
    assert len(rows) == 5
    by_order = [rows[run.removeprefix("train-")] for run in order]

    def starts(i):
        return [e for e in events if e["run"] == order[i] and e["event"] == "start"]

    nan, oom_once, bug, oom_always, clean = by_order
    assert nan["status"] == "error" and "non-finite loss" in nan["error"]
    assert len(starts(0)) == 1, "a NaN loss must not be retried"
    assert bug["status"] == "error" and "ValueError" in bug["error"]
    assert len(starts(2)) == 1, "a permanent error must not be retried"

    assert oom_once["status"] == "finished", oom_once
    first, retry = starts(1)
    assert retry["phase"] == "target" and retry["phase_step"] == 2, retry  # from its checkpoint
    assert oom_always["status"] == "error" and "OutOfMemoryError" in oom_always["error"]
    assert len(starts(3)) == 1 + 2  # the first run and max_failures=2 retries
    assert all(s["phase_step"] == 2 for s in starts(3)[1:])
    assert clean["status"] == "finished"
    for row in by_order:
        assert row["error"] is None or "Traceback" not in row["error"]


@pytest.mark.parametrize("cause, permanent", [
    ("FloatingPointError: non-finite loss nan on task 'x' at step 3", True),
    ("ValueError: bad batch (injected at run target step 2)", True),
    ("spaces.config.ConfigError: invalid trial config", True),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", False),
    ("RuntimeError: worker crashed (injected at run)", False),
    ("ray.exceptions.ActorDiedError: The actor died unexpectedly", False),
    ("OSError: [Errno 5] Input/output error", False),
])
def test_which_causes_are_retried(cause, permanent):
    from search.failures import is_permanent

    assert is_permanent(cause) is permanent
