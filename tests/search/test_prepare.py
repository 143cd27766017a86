"""``xstilts prepare`` fills a node's caches; a trial then runs offline from them alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search.prepare import covering_config
from spaces.presets import load_preset
from trainables.trial_data import trial_splits

pytestmark = pytest.mark.ray

#: the same trial settings for prepare and the trial: they are part of the cache keys
SETS = ["max_length=48", "max_train_examples=96", "max_eval_examples=64", "batch_size=16",
        "intermediate_steps=8", "target_epochs=1", "eval_every=0",
        "intermediate_tasks=[demo-polarity,demo-tags]", "weights={}"]


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _token_entries(cache: Path) -> set[str]:
    return {str(p.relative_to(cache)) for p in (cache / "tokens").glob("*/*")
            if p.is_dir() and not p.name.startswith(".")}


def test_prepare_covers_every_split_a_trial_of_the_space_reads():
    preset = load_preset("demo")
    base, sweep = preset.trial_config([]), preset.sweep_config([])
    prepared = {(r.task, r.split, r.language) for r in trial_splits(covering_config(base, sweep))}
    for tasks in ([sweep.space.tasks[0]], list(sweep.space.tasks[1:3])):
        one = base.replace(intermediate_tasks=tuple(tasks), weights={})
        wanted = {(r.task, r.split, r.language) for r in trial_splits(one)}
        assert wanted <= prepared, wanted - prepared


def test_prepared_demo_trial_runs_offline_from_the_cache_alone(tmp_path, no_ray_here):
    repo = Path(__file__).resolve().parents[2]
    cache = tmp_path / "cache"
    env = {**os.environ, "XSTILTS_CACHE": str(cache), "PYTHONPATH": str(repo)}
    done = _cli("prepare", "demo", "--quiet", *[a for s in SETS for a in ("--set", s)],
                env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "xstilts: prepared demo" in done.stdout
    entries = _token_entries(cache)
    assert entries, "prepare encoded nothing"
    # the source rows are gone and the hub is off: only the caches can serve the trial
    suite = next(cache.glob("demo-suite-v*"))
    shutil.rmtree(suite)
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1"}
    trial = _cli("trial", "demo", "--storage", str(tmp_path / "runs"), "--name", "offline",
                 "--json", *[a for s in SETS for a in ("--set", s)], env=offline, cwd=tmp_path)
    assert trial.returncode == 0, trial.stderr[-3000:]
    assert '"zs_accuracy"' in trial.stdout
    assert not suite.exists(), "the trial rebuilt the demo suite: it read source rows"
    assert _token_entries(cache) == entries, "the trial encoded splits prepare did not"
