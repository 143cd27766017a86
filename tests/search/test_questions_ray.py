"""The question presets end to end (``spaces/presets/questions``), cut to CI's time: the
designed multi- vs single-task sweep with its out-of-domain set (questions 1, 2 and 4
read its report) and the retrieval question on the hub-schema fixtures (question 3)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import main
from search.query import load_sweep
from search.report import arm_differences, arm_trials, domain_shift, language_groups
from search.sweep import SweepPlan, run_sweep
from spaces.presets import load_preset
from trainables.data import DATA_DIR_ENV

pytestmark = pytest.mark.ray

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"
#: caps that keep a demo trial to seconds; the preset is otherwise as shipped
CAPS = ["max_train_examples=64", "max_eval_examples=48", "intermediate_steps=10",
        "target_epochs=1", "batch_size=16", "max_length=48"]


def test_the_multitask_calibration_question_runs_and_its_report_answers_it(
        ray_local, tmp_path, capsys):
    preset = load_preset("q-calibration-multitask")
    plan = SweepPlan(storage=str(tmp_path), name="q1", base=preset.trial_config(CAPS),
                     sweep=preset.sweep_config(CAPS, trials=8, space={"seeds": [0, 1]}))
    run_sweep(plan)

    trials = arm_trials(plan.path)  # every arm at both seeds, each its own config
    assert sorted(trials.groupby("arm")["seed"].apply(sorted).tolist()) == [[0, 1]] * 4
    assert trials["multi"].sum() == 2 and len(set(load_sweep(plan.path).trials["config_hash"])) == 8
    diffs = arm_differences(plan.path)
    assert set(diffs["single_arm"]) == {"demo-polarity", "demo-topic", "demo-match",
                                        "single (mean)"}
    assert (diffs["n"] == 2).all() and diffs["difference"].notna().all()
    assert {"zs_accuracy", "zs_ece", "zs_ece_ts", "demo-sentiment-ood:accuracy",
            "demo-sentiment-ood:ece"} <= set(diffs["metric"])
    assert list(domain_shift(plan.path)["set"]) == ["demo-sentiment", "demo-sentiment-ood"]
    morphology = language_groups(plan.path, "morphology")
    assert {"fusional", "agglutinative"} <= set(morphology["morphology"])

    # the report's numbers are these
    capsys.readouterr()  # (the sweep's own lines)
    assert main(["report", plan.path, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["arms"]["missing"] == []
    assert printed["arms"]["differences"] == json.loads(diffs.to_json(orient="records"))
    assert printed["calibration"]["domain_shift"][1]["set"] == "demo-sentiment-ood"
    assert main(["report", plan.path, "--out", str(tmp_path / "page")]) == 0
    page = (tmp_path / "page" / "report.html").read_text()
    assert "Multi-task minus single-task, paired by seed" in page
    assert (tmp_path / "page" / "figures" / "arms.png").stat().st_size > 1000


def test_the_retrieval_question_runs_on_the_fixtures_with_calibrated_retrieval(
        no_ray_here, embedded_cache, tmp_path):
    env = {**os.environ, DATA_DIR_ENV: str(FIXTURES)}
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", "q-retrieval-lowres", "--storage",
         str(tmp_path), "--name", "q3", "--trials", "4", "--set", "search.space.seeds=[0]"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = load_sweep(str(tmp_path / "q3"))
    done = sweep.trials[sweep.trials["status"] == "finished"]
    assert len(done) == 4 and done["zs_ece"].between(0, 1).all()  # retrieval, calibrated
    assert set(arm_trials(sweep)["arm"]) == {"mnli", "qqp", "squad", "mnli+qqp+squad"}
    diffs = arm_differences(sweep)  # the designed comparison, without an ECE after scaling
    assert set(diffs["metric"]) == {"zs_accuracy", "zs_ece"} and (diffs["n"] == 1).all()
    by_resource = language_groups(sweep, "resource")
    assert set(by_resource["resource"]) == {"high"}  # de and ja: CC-100 high resource
    assert by_resource["ece"].notna().all()
