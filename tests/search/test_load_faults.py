"""A dropped connection while a trial loads its data: retried in the worker, then by Tune.

A real sweep (``xstilts run demo``, one trial) in a subprocess with its own Ray; the
fault is injected into ``load_rows`` in the Train worker through ``XSTILTS_FAULTS``. The
token cache is fresh, so the trial really loads its rows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from search.results import read_table
from trainables.chaos import read_ledger
from trainables.data import LOAD_ATTEMPTS
from trainables.embedded_default import demo_suite_dir, tiny_model_dir

pytestmark = pytest.mark.ray

FAST = ["--set", "max_train_examples=64", "--set", "max_eval_examples=32",
        "--set", "batch_size=16", "--set", "eval_every=0",
        "--set", "search.space.intermediate_steps=[10,20,10]",
        "--set", "search.space.batch_size=[16]", "--set", "search.space.target_epochs=[1.0]",
        "--set", "search.asha_grace=0", "--set", "search.concurrency=1",
        "--set", "search.max_failures=1"]
#: one more failure than the worker's in-process attempts: the first run of the trial ends
#: with a FetchError, Tune runs it again, and its second load attempt succeeds
FAILURES = LOAD_ATTEMPTS + 1


def test_a_connection_error_while_loading_is_retried_in_process_then_by_tune(tmp_path,
                                                                             no_ray_here):
    cache = tmp_path / "cache"  # the embedded model and suite as built, no token cache
    for built in (demo_suite_dir(), tiny_model_dir()):
        shutil.copytree(built, cache / built.name)
    ledger = tmp_path / "ledger.jsonl"
    env = {**os.environ, "XSTILTS_CACHE": str(cache), "XSTILTS_LEDGER": str(ledger),
           "XSTILTS_FAULTS": json.dumps({"*": f"connection:load:demo-sentiment:{FAILURES}"})}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", "demo", "--storage", str(tmp_path / "runs"),
         "--name", "loadfault", "--trials", "1", *FAST],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    (row,) = read_table(str(tmp_path / "runs" / "loadfault"), "trials").to_pylist()
    assert row["status"] == "finished" and row["error"] is None, row
    events = read_ledger(str(ledger))
    faults = [e for e in events if e["event"] == "fault" and e.get("phase") == "load"]
    assert len(faults) == FAILURES and {e["task"] for e in faults} == {"demo-sentiment"}
    assert {e["run"] for e in faults} == {f"train-{row['trial_id']}"}
    first, retried = faults[:LOAD_ATTEMPTS], faults[LOAD_ATTEMPTS:]
    # the in-process attempts share one worker; Tune's retry is a new Train run (new worker)
    assert len({e["pid"] for e in first}) == 1
    assert retried[0]["pid"] != first[0]["pid"]
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 1  # only the retried run got past loading
    # what the sweep read from the first run: the transient class, across Ray's reports
    (error,) = (tmp_path / "runs" / "loadfault" / "tune").glob("*/error.txt")
    assert ("trainables.retry.FetchError: could not fetch task 'demo-sentiment', split "
            "'train', language 'en'") in error.read_text()
