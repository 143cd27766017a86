"""The paper-scale benchmark (benchmarks/paper_scale.py) writes corpora a trial loads
through the local mirror, in the hub's schemas and at realistic lengths (here at a tiny
size), the same bytes for the same seed; its table says when a run was killed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from spaces.config import TrialConfig
from trainables.data import DATA_DIR_ENV
from trainables.trial_data import load_trial_data

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import paper_scale  # noqa: E402


def test_a_trial_loads_the_synthetic_mirror(tmp_path, monkeypatch, tokenizer):
    import datasets

    datasets.disable_progress_bars()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    mirror = tmp_path / "mirror"
    manifest = paper_scale.write_mirror(mirror, tokenizer, scale=1e-4, min_rows=40)
    files = paper_scale.mirror_files(1e-4, 40)
    assert len(manifest["files"]) == len(files) == 50  # XNLI dev and test: 15 languages each
    for name, rows in manifest["files"].items():
        assert sum(1 for _ in open(mirror / name)) == rows
    assert paper_scale.write_mirror(mirror, tokenizer, scale=1e-4, min_rows=40)["reused"]
    again = paper_scale.write_mirror(tmp_path / "again", tokenizer, scale=1e-4, min_rows=40)
    assert (tmp_path / "again" / "squad" / "train.en.jsonl").read_bytes() == \
        (mirror / "squad" / "train.en.jsonl").read_bytes() and not again["reused"]

    monkeypatch.setenv(DATA_DIR_ENV, str(mirror))
    monkeypatch.setenv("XSTILTS_CACHE", str(tmp_path / "cache"))
    cfg = TrialConfig.from_dict(paper_scale.trial_config_dict(128))
    data = load_trial_data(cfg, tokenizer)
    assert sorted(data.inter_train) == sorted(paper_scale.INTERMEDIATE)
    assert sorted(data.eval_sets) == sorted(cfg.eval_languages) and len(cfg.eval_languages) == 15
    assert all(len(s) >= 40 for s in [*data.inter_train.values(), data.target_train])
    # MNLI: ~20 + ~10 words at ~1.35 tokens a word, and <s> </s></s> </s>
    assert 30 <= np.mean(data.inter_train["mnli"].lengths()) <= 60
    assert len(data.tag_names["ccg"]) > 100  # CCG-like supertags, a few hundred kinds


def test_table_reports_a_killed_run_against_a_finished_one():
    steps = {"mnli": {"format": "classification", "lengths_s": 0.5, "first_batch_s": 1.0,
                      "ms_per_step": 0.5}}
    splits = {"mnli": {"role": "train", "format": "classification", "sequences": 10,
                       "tokens": 400}}
    memory = {"rss": 2 << 30, "uss": 1 << 30, "anon": 1 << 29, "file": 1 << 30,
              "shared": 1 << 28, "pss": 1 << 30}
    done = {"killed": None, "rc": 0, "ready_s": 3.25, "vmhwm_at_ready": 2 << 30,
            "vmhwm_at_end": 3 << 30, "memory_before_load": memory, "memory_at_ready": memory,
            "peaks": {"load": memory}, "steps": steps, "splits": splits, "log": "x.log"}
    killed = {"killed": {"why": "memory", "at_s": 95.4, "phase": "load"}, "rc": -9,
              "peaks": {"load": {**memory, "uss": 11 << 30}}, "log": "y.log"}
    text = paper_scale.table({"before": {"cold": killed}, "after": {"cold": done, "warm": done}},
                             12)
    ready = [line for line in text.splitlines() if line.startswith("data-ready s, trial 1")]
    assert ready and "> 12 GiB (killed at 95 s)" in ready[0] and ready[0].endswith("3.25")
    assert "not run: trial 1 killed" in text and ">= 11.00 GiB when stopped" in text
    assert "host ms/step (median), classification (mnli)" in text
