"""What a Ray Train run costs before its first step and after its last, on this machine.

Every model trial is one ``TorchTrainer`` run (``trainables.trial.make_trainer``): a
controller actor, a worker group, a process group, then the trial's imports. This times,
on a local Ray cluster with nothing else running, ``--runs`` fits of a function that does
nothing and of one that only imports what a trial imports (``trainables.loop``, the XLM-R
model code): seconds from ``fit()`` to the function's first line, its imports, and the
whole fit. A demo trial on the tiny model trains for a few seconds; this is the floor under
its wall time that no early stopping removes.

    python benchmarks/train_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def empty(config) -> None:
    _write(config, time.time(), imports=0.0)


def trial_imports(config) -> None:
    first = time.time()
    import trainables.loop  # noqa: F401
    import transformers.models.xlm_roberta.modeling_xlm_roberta  # noqa: F401

    _write(config, first, imports=time.time() - first)


def _write(config, first: float, *, imports: float) -> None:
    """The worker's times, to a file the driver reads (same machine): a report without a
    checkpoint leaves Train V2's ``Result.metrics`` empty."""
    Path(config["out"]).write_text(json.dumps({"first_line": first - config["t0"],
                                               "imports": imports}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="fits of each function")
    args = p.parse_args()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from search.local_ray import ensure_ray

    ensure_ray(num_cpus=2, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="xstilts-startup-")
    for fn in (empty, trial_imports):
        rows = []
        for i in range(args.runs):
            out, t0 = Path(storage) / f"{fn.__name__}-{i}.json", time.time()
            TorchTrainer(fn, train_loop_config={"t0": t0, "out": str(out)},
                                  scaling_config=ScalingConfig(num_workers=1),
                                  run_config=RunConfig(storage_path=storage,
                                                       name=f"{fn.__name__}-{i}")).fit()
            rows.append({**json.loads(out.read_text()), "fit": time.time() - t0})
        line = ", ".join(f"{k} " + "/".join(f"{r[k]:.1f}" for r in rows) + " s"
                         for k in ("first_line", "imports", "fit"))
        print(f"{fn.__name__:<14} (runs 1..{args.runs}): {line}; median fit "
              f"{statistics.median(r['fit'] for r in rows):.1f} s", flush=True)


if __name__ == "__main__":
    main()
