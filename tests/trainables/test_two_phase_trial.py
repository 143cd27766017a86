"""A trial on a sweep's schedule: target probes at the rungs that fall in phase 2,
checkpoints there that a lost trial goes on from, evaluation at rungs, and checkpoints
that hold only what they must (and nothing that could run code)."""

import os

import pytest
import torch
from ray.train import Checkpoint, TrainingFailedError

from search.failures import is_permanent, root_cause
from spaces.config import TrialConfig
from spaces.objective import BUDGET_KEY, DONE_KEY, SCORE_KEY
from trainables.loop import STATE_FILE, UnsafeCheckpointError, load_checkpoint_file
from trainables.trial import run_trial

pytestmark = pytest.mark.ray

SMALL = dict(intermediate_tasks=("demo-polarity", "demo-match"), intermediate_steps=30,
             target_epochs=1.0, batch_size=16, max_length=48, learning_rate=2e-3,
             max_train_examples=96, max_eval_examples=64, seed=0, probe_steps=4,
             probe_examples=48, probe_eval_examples=32)
SCHEDULE = {"rungs": [10, 20, 33], "two_phase": True}  # 30 phase-2 steps, then 6 target steps


def _reports(result):
    return [(cp, m) for cp, m in sorted(result.best_checkpoints, key=lambda cm: cm[1]["step"])]


def _state(checkpoint: Checkpoint) -> dict:
    with checkpoint.as_directory() as d:
        return load_checkpoint_file(os.path.join(d, STATE_FILE))


def test_phase_two_rungs_probe_the_target_and_leave_the_trial_as_it_was(ray_local, tmp_path):
    cfg = TrialConfig(**SMALL)
    plain = run_trial(cfg, storage_path=str(tmp_path), name="plain", keep_checkpoints=None)
    probed = run_trial(cfg, storage_path=str(tmp_path), name="probed", keep_checkpoints=None,
                       schedule=SCHEDULE)
    reports = _reports(probed)
    probes = [m for _, m in reports if m.get("probe")]
    assert [m[BUDGET_KEY] for m in probes] == [10, 20]
    for m in probes:  # scored like the objective: every language, on the probe's subsets
        assert 0.0 <= m["zs_accuracy"] <= 1.0 and SCORE_KEY in m and not m[DONE_KEY]
        assert {"de/accuracy", "fr/ece", "sw/accuracy"} <= set(m)
    rung_3 = [m for _, m in reports if m[BUDGET_KEY] == 33]
    assert len(rung_3) == 1 and rung_3[0]["phase"] == "target" and rung_3[0]["target_step"] == 3
    assert probed.metrics[DONE_KEY] and probed.metrics[BUDGET_KEY] == 36
    # the probes trained copies: the trial itself trained exactly as without them
    assert probed.metrics[SCORE_KEY] == pytest.approx(plain.metrics[SCORE_KEY], abs=1e-6)
    assert probed.metrics["en/accuracy"] == pytest.approx(plain.metrics["en/accuracy"], abs=1e-6)

    # a phase-2 rung's checkpoint holds the phase's optimizer; the last one weights only
    at_10 = next(cp for cp, m in reports if m[BUDGET_KEY] == 10)
    state = _state(at_10)
    assert state["state"]["phase"] == "intermediate" and state["state"]["intermediate_step"] == 10
    assert state["optimizer"] is not None and state["optimizer"]["state"]
    last = _state(reports[-1][0])
    assert last["state"]["phase"] == "done" and "optimizer" not in last and "cursors" not in last

    # a trial lost after its rung-20 checkpoint goes on from there: 10 phase-2 steps left
    at_20 = next(cp for cp, m in reports if m[BUDGET_KEY] == 20)
    resumed = run_trial(cfg, storage_path=str(tmp_path), name="resumed", resume_from=at_20,
                        schedule=SCHEDULE)
    assert resumed.metrics["intermediate_steps_run"] == 10 and resumed.metrics["step"] == 36
    assert resumed.metrics[DONE_KEY] and 0.0 <= resumed.metrics["zs_accuracy"] <= 1.0


def test_a_checkpoint_that_carries_a_callable_is_refused(ray_local, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save({"config_hash": TrialConfig(**SMALL).config_hash(), "model": {},
                "hook": os.system}, bad / STATE_FILE)
    with pytest.raises(UnsafeCheckpointError, match=r"only tensors and plain values.*refused"):
        load_checkpoint_file(str(bad / STATE_FILE))
    # through a trial: it fails before training, for good (a retry would meet it again)
    with pytest.raises(TrainingFailedError) as failed:
        run_trial(TrialConfig(**SMALL), storage_path=str(tmp_path), name="bad",
                  resume_from=Checkpoint(str(bad)))
    cause = root_cause(failed.value)
    assert cause.startswith("trainables.loop.UnsafeCheckpointError") and "system" in cause, cause
    assert is_permanent(cause)
