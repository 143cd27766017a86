"""The question presets' demo variants, run as shipped, and each one's headline table
(the numbers its report section shows).

    python benchmarks/questions.py [--storage DIR] [--only q-model-size ...]

q-retrieval-lowres runs on the hub-schema fixtures (XSTILTS_DATA_DIR is set for it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from search.report import arm_differences, arm_trials, domain_shift, language_groups

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ("q-calibration-multitask", "q-model-size", "q-domain-shift", "q-retrieval-lowres")


def run(name: str, storage: str) -> str:
    env = dict(os.environ)
    if name == "q-retrieval-lowres":
        env["XSTILTS_DATA_DIR"] = str(ROOT / "tests" / "fixtures" / "xtreme")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "search.cli", "run", name, "--storage", storage,
                           "--name", name], capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    print(f"\n== {name}: {time.perf_counter() - t0:.0f} s")
    return f"{storage}/{name}"


def show(frame: pd.DataFrame, columns: list[str]) -> None:
    cols = [c for c in columns if c in frame.columns]
    print(frame[cols].to_string(index=False, float_format=lambda v: f"{v:+.4f}"
                                if abs(v) < 1 else f"{v:.4f}"))


def headline(name: str, path: str) -> None:
    if name in ("q-calibration-multitask", "q-domain-shift", "q-retrieval-lowres"):
        arms = arm_trials(path)
        means = arms.drop(columns=["trial_id", "seed", "multi"]).groupby(
            ["model_size", "arm"]).mean(numeric_only=True).reset_index()
        print("arms (mean over seeds):")
        show(means, list(means.columns))
        d = arm_differences(path)
        if name == "q-domain-shift":
            d = d[d["metric"].str.contains("ood") | (d["metric"] == "zs_accuracy")]
        print("multi-task minus single-task, paired by seed (95% bootstrap over seeds):")
        show(d, ["multi_arm", "single_arm", "metric", "n", "difference", "low", "high"])
    if name == "q-domain-shift":
        print("in domain vs out of domain:")
        show(domain_shift(path), ["set", "model_size", "trials", "accuracy", "accuracy_shift",
                                  "ece", "ece_shift", "ece_ts", "ece_ts_shift"])
    if name in ("q-model-size", "q-retrieval-lowres"):
        by = "morphology" if name == "q-model-size" else "resource"
        print(f"by {by}:")
        show(language_groups(path, by), ["model_size", by, "languages", "trials", "accuracy",
                                         "accuracy_gap", "ece", "ece_gap"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", default=None)
    p.add_argument("--only", nargs="*", default=list(QUESTIONS))
    args = p.parse_args()
    storage = args.storage or tempfile.mkdtemp(prefix="xstilts-questions-")
    for name in args.only:
        headline(name, run(name, storage))


if __name__ == "__main__":
    main()
