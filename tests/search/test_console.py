"""What ``xstilts run`` prints: on a non-terminal, one line per recorded trial and a progress
line, nothing from Ray's internals and no warning (those go to STORAGE/NAME/logs/);
``--verbose`` shows them again."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from search.console import Console, _ToConsole
from search.results import RECORDED_ATTR

TRIAL_LINE = re.compile(r"^xstilts: trial \w+ (finished|stopped|error|duplicate): score ")


def _run(tmp_path, name, *extra):
    return subprocess.run([sys.executable, "-m", "search.cli", "run", "demo", "--storage",
                           str(tmp_path), "--name", name, "--trials", "2", *extra],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ),
                          stdin=subprocess.DEVNULL)


def _own_lines(out: str) -> list[str]:
    """The lines before the final table (which follows 'best configurations of')."""
    head = out.split("\nbest configurations of", 1)[0]
    return [ln for ln in head.splitlines() if ln.strip()]


@pytest.mark.ray
def test_the_demo_prints_its_progress_and_nothing_of_rays(no_ray_here, tmp_path):
    proc = _run(tmp_path, "quiet")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stderr == ""  # warnings and Ray's lines (stderr) went to the log
    lines = _own_lines(proc.stdout)
    assert all(ln.startswith("xstilts: ") for ln in lines), lines
    assert not [ln for ln in lines if "pid=" in ln or "warn" in ln.lower()], lines
    assert len([ln for ln in lines if TRIAL_LINE.match(ln)]) == 2, lines
    assert lines[-1].startswith("xstilts: progress: 2 of 2 done, 0 running, 0 left; best ")
    assert "best configurations of" in proc.stdout
    logs = list((tmp_path / "quiet" / "logs").glob("driver-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "RayTrainWorker" in text or "TrainController" in text  # Train's lines are here

    verbose = _run(tmp_path, "loud", "--verbose", "--set", "search.trainable=surrogate")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert verbose.stderr.strip()  # Ray's, Tune's and Optuna's own lines are back
    assert not (tmp_path / "loud" / "logs").exists()
    assert len([ln for ln in verbose.stdout.splitlines() if TRIAL_LINE.match(ln)]) == 2


class _Trial:
    def __init__(self, trial_id, score=None, finished=True):
        self.trial_id = trial_id
        self.last_result = {"score": score, "finished": finished} if score else {}


def test_on_a_terminal_the_running_trials_are_redrawn_in_place(tmp_path):
    out = tmp_path / "tty.txt"
    with open(out, "w") as stream:
        console = Console(4, stream, live=True)
        console.on_trial_start(0, [], _Trial("a"))
        console.on_trial_result(0, [], _Trial("a"), {"phase": "target", "budget": 120,
                                                      "score": 0.41, "train_tokens_per_s": 9000})
        console._last_draw = 0.0
        console.on_trial_result(0, [], _Trial("a"), {"phase": "target", "budget": 160,
                                                      "score": 0.45})
        # the results writer records a trial's row (its log line), then the console ends it
        sink = _ToConsole(console)
        sink.emit(_recorded("trial a finished: score 0.45", "a"))
        console.on_trial_complete(0, [], _Trial("a", 0.45))
        console.on_trial_start(0, [], _Trial("b"))
        sink.emit(_recorded("trial b stopped: score 0.9", "b"))
        console.on_trial_complete(0, [], _Trial("b", 0.9, finished=False))  # stopped by ASHA
        # a resumed sweep's replay of a trial recorded before: it ends, nothing is recorded
        console.on_trial_start(0, [], _Trial("c"))
        console.on_trial_complete(0, [], _Trial("c", 0.3))
        console.close()
    text = out.read_text()
    assert "\x1b[" in text  # the block was cleared and drawn again, not appended
    assert "a          target       step     160  score 0.4500  9000 tok/s" in text
    assert "xstilts: trial a finished: score 0.45\n" in text
    assert "1 of 4 done, 0 running, 3 left; best 0.4500 (a)" in text
    assert "2 of 4 done, 0 running, 2 left; best 0.4500 (a)" in text  # a stopped trial's
    assert "best 0.9000" not in text  # truncated score is not a result
    # a replay is no trial more: the last summary still counts two done
    assert re.findall(r"(\d) of 4 done, (\d) running", text)[-1] == ("2", "0")


def _recorded(message: str, trial_id: str) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "xstilts.results", "levelno": logging.INFO,
                                  "msg": message, RECORDED_ATTR: trial_id})
