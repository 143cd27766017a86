"""A sweep whose storage fills up mid-sweep: the driver stops it with one clear message,
no trial is recorded as failed for it, nothing recorded is damaged, and ``xstilts resume``
completes the budget once space is freed, every trial exactly once.

The storage is a real small filesystem (tmpfs); when the first trial is recorded, a
ballast file takes every byte left, and is deleted before the resume."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.results import read_table

pytestmark = pytest.mark.ray

TRIALS = 4
FAST = ["--set", "max_train_examples=96", "--set", "max_eval_examples=64",
        "--set", "batch_size=16", "--set", "eval_every=2",
        "--set", "search.space.intermediate_steps=[10,30,10]",
        "--set", "search.space.batch_size=[16]", "--set", "search.space.target_epochs=[1.0]",
        "--set", "search.asha_grace=0", "--set", "search.concurrency=2"]


@pytest.fixture
def small_filesystem(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full; the bytes written."""
    written, block = 0, b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    written += f.write(block[:size])
            except OSError:
                continue
    return written


def test_storage_full_stops_the_sweep_and_resume_completes_it(small_filesystem, tmp_path,
                                                              no_ray_here):
    storage, name = small_filesystem, "full"
    sweep = storage / name
    env = {**os.environ, "RAY_DEDUP_LOGS": "1"}
    env.pop("RAY_ADDRESS", None)
    run = [sys.executable, "-m", "search.cli", "run", "demo", "--storage", str(storage),
           "--name", name, "--trials", str(TRIALS), *FAST]
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(run, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        while not (sweep / "results" / "parts").is_dir() or not any(
                (sweep / "results" / "parts").glob("trials-*.parquet")):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial was recorded in 10 minutes"
            time.sleep(0.05)
        filled_at = time.monotonic()
        ballast = storage / "ballast"
        _fill(ballast)
        rc = proc.wait(timeout=300)
        stopped_after = time.monotonic() - filled_at
    text = log.read_text()
    assert rc == 3, text[-4000:]
    # one clear message: which storage, that it is full, what a trial needs, what to do
    message = [ln for ln in text.splitlines() if ln.startswith("xstilts: error:")]
    assert len(message) == 1, text[-4000:]
    assert f"storage {storage} is full" in message[0] and "iB there for its checkpoint" in message[0]
    assert f"xstilts resume {sweep}" in message[0]
    assert stopped_after < 60, f"the driver took {stopped_after:.0f} s to stop"
    # not thousands of lines of tracebacks: what is left is Ray's own log of the failed
    # upload in the worker and the Train controller (~7 tracebacks, ~330 lines in all)
    tracebacks = text.count("Traceback")
    assert tracebacks <= 15 and len(text.splitlines()) < 800, text[-6000:]
    print(f"\nstorage full: the driver stopped {stopped_after:.1f} s after the fill, rc {rc}, "
          f"{len(text.splitlines())} log lines, {tracebacks} tracebacks; {message[0]}")

    recorded = read_table(str(sweep), "trials").to_pandas()
    assert len(recorded) >= 1 and "error" not in set(recorded["status"]), recorded
    before = recorded.set_index("trial_id")["objective"].to_dict()

    ballast.unlink()  # space freed
    resumed = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(sweep)],
                             capture_output=True, text=True, env=env, timeout=900)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    table = read_table(str(sweep), "trials").to_pandas()
    assert len(table) == TRIALS and table["trial_id"].is_unique, table[["trial_id", "status"]]
    assert set(table["status"]) <= {"finished", "stopped", "duplicate"}, table["status"]
    after = table.set_index("trial_id")["objective"].to_dict()
    assert all(after[t] == v for t, v in before.items())  # what was recorded stands
