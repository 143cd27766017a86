"""Show the demo suite's signal: zero-shot target accuracy with the helpful
intermediate task (demo-polarity) vs with only an unhelpful one (demo-topic),
and with the tagging task (demo-tags) alone.

Each trial is a real Ray Train trial on the embedded default. Prints per-seed
figures, the means, the seed noise (std) and the difference in units of it.

    python benchmarks/demo_signal.py [--seeds 0 1 2] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from search.local_ray import ensure_ray
from spaces.presets import load_preset
from trainables.trial import run_trial

ARMS = {"helpful (demo-polarity)": "[demo-polarity]", "unhelpful (demo-topic)": "[demo-topic]",
        "tagging (demo-tags)": "[demo-tags]"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    ensure_ray(include_dashboard=False)
    preset = load_preset("demo")
    results: dict[str, list[float]] = {arm: [] for arm in ARMS}
    storage = tempfile.mkdtemp(prefix="xstilts-signal-")
    t0 = time.perf_counter()
    for seed in args.seeds:
        for arm, tasks in ARMS.items():
            cfg = preset.trial_config([*args.overrides, f"intermediate_tasks={tasks}", "weights={}",
                                       f"seed={seed}", "eval_every=0"])
            m = run_trial(cfg, storage_path=storage, name=f"{cfg.config_hash()}").metrics
            results[arm].append(m["zs_accuracy"])
            langs = "  ".join(f"{lang} {m[f'{lang}/accuracy']:.3f}" for lang in ("en", "de", "fr", "sw"))
            print(f"seed {seed}  {arm:<24} zs_accuracy {m['zs_accuracy']:.3f}   {langs}", flush=True)
    (good, gm), (bad, bm) = [(arm, statistics.mean(v)) for arm, v in list(results.items())[:2]]
    noise = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in results.values())
    print(f"\nmean zero-shot accuracy over seeds {args.seeds}:")
    for arm, v in results.items():
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"  {arm:<24} {statistics.mean(v):.3f} ± {sd:.3f} (std over seeds)")
    print(f"difference {gm - bm:+.3f} = {(gm - bm) / noise if noise else float('inf'):.1f}× the larger "
          f"seed std; {len(args.seeds) * len(ARMS)} trials in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
