"""``xstilts status``: a running sweep, its driver killed with SIGKILL, and the sweep
finished by a resume, all read from the storage by another process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from search.status import HEARTBEAT_S, LOCK_FILE, lock_alive
from search.tables import read_table


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True,
                          text=True, timeout=300, **kw)


def _status(path) -> dict:
    proc = _cli("status", path, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _recorded(path) -> int:
    try:
        table = read_table(path, "trials")
    except Exception:  # a part being written
        return 0
    return 0 if table is None else table.num_rows


@pytest.mark.ray
def test_status_while_running_after_kill_nine_and_when_finished(no_ray_here, tmp_path):
    path = str(tmp_path / "st")
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", "demo", "--storage", str(tmp_path), "--name",
         "st", "--trials", "6", "--set", "search.trainable=surrogate", "--set",
         "search.surrogate_seconds=4", "--set", "search.concurrency=1", "--set",
         "search.asha_grace=0"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _recorded(path) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "driver.log").read_text()[-3000:]
            time.sleep(0.5)
        running = _status(path)
        assert running["state"] == "running", running
        assert running["driver"]["pid"] == driver.pid
        assert running["driver"]["host"] == socket.gethostname()
        assert running["budget"] == 6 and 2 <= running["recorded"] < 6
        assert running["left"] == 6 - running["recorded"]
        assert running["counts"].get("finished", 0) >= 1 and running["best"]["objective"]
        text = _cli("status", path).stdout
        assert f"running (driver pid {driver.pid} on" in text and "of 6 recorded" in text
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        with contextlib.suppress(ProcessLookupError):  # the Ray it started, in its session
            os.killpg(driver.pid, signal.SIGKILL)
    dead = _status(path)
    assert dead["state"] == "interrupted", dead  # the lock is left, its pid is gone
    assert "xstilts resume " + path in _cli("status", path).stdout

    resumed = _cli("resume", path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = _status(path)
    assert done["state"] == "finished" and done["recorded"] == 6 and done["left"] == 0
    assert done["driver"] is None  # the lock went with its driver
    assert not (tmp_path / "st" / LOCK_FILE).exists()


def test_a_driver_elsewhere_is_judged_by_its_heartbeat():
    lock = {"host": "another-host", "pid": 1, "heartbeat": 1000.0, "heartbeat_s": HEARTBEAT_S}
    assert lock_alive(lock, now=1000.0 + HEARTBEAT_S)
    assert not lock_alive(lock, now=1000.0 + 4 * HEARTBEAT_S)
    assert not lock_alive({"host": "another-host", "pid": 1}, now=0.0)  # no heartbeat: old lock
    here = {"host": socket.gethostname(), "pid": os.getpid()}
    assert lock_alive(here)
