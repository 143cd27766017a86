"""What early stopping over the whole trial saves (issue 16), part by part.

    python benchmarks/sweep_cost.py surrogate [--preset paper-base] [--seeds 0-9] [--json F]
    python benchmarks/sweep_cost.py surrogate --from-json F [F ...] [--first 300]  # pooled
    python benchmarks/sweep_cost.py surrogate --schemes two-phase --rungs 2000:3 --json F
    python benchmarks/sweep_cost.py rungs --from-json F [F ...] [--rungs 4000:3,2000:3]
    python benchmarks/sweep_cost.py demo [--seeds 0-2]          # real demo trials (long)
    python benchmarks/sweep_cost.py storage                    # a real demo sweep's bytes
    python benchmarks/sweep_cost.py cost-model --surrogate F   # paper-base GPU-hours, a model
    python benchmarks/sweep_cost.py tune-state [--trials 1000] # Tune's snapshot per trial
    python benchmarks/sweep_cost.py tune-breakdown SWEEP       # whose bytes, per trial

Two schemes, each a preset with ``--set``-style sweep changes:

- *today*: ``search.two_phase: false``, ASHA's rungs in phase-3 steps (``asha_grace`` 4000
  for paper-base, 20 for the demo, with ``trial.eval_every=20`` there): phase 2 always runs
  to its end;
- *two-phase*: the preset as it is: the budget counts phase-2 and phase-3 steps, and a trial
  reports a target probe at the rungs that fall in phase 2.

``surrogate``: sweeps of surrogate trials (``trainables.surrogate``: the same two phases,
a noisy probe in phase 2), one per seed and scheme. The cost of a sweep until its best
finished score is within a margin of the surrogate's optimum is the optimizer steps its
trials ran, phase 2 and phase 3 alike (a today trial runs its whole phase 2 before its
budget counts), summed in the order trials ended. For paper-base it is also given
FLOP-weighted (``cost-model``'s FLOPs of each trial's steps), with a bootstrap interval over
seeds. ``--json`` keeps every trial for ``cost-model`` and ``--from-json``, which reports
again on one or more runs' sweeps (a seed run twice is two pairs: its trials end in a
timing-set order, so its sweeps differ), cut to their first ``--first`` trials.

``rungs`` (a'): where two-phase's rungs could go, in seconds instead of sweeps: each stored
two-phase sweep's configs, in the order they ended, judged again by Ray's ASHA bracket with
other ``GRACE:REDUCTION`` rungs (``replay_rungs``), against the stored today sweeps. A
what-if, not a sweep: the searcher would have drawn other configs. The surrogate's probe
ranks configs as well at 2k steps of phase 2 as at 12k, so it favours early rungs by
construction; ``--early-noise`` asks what an early probe that ranks worse does to each.
``surrogate --rungs G:R --schemes two-phase --json F`` runs the real sweeps of one placement,
to pair with another run's today sweeps in one file.

``demo`` (b): the demo preset with real trials through the CLI, 3 seeds: trial-seconds
(``wall_seconds`` summed in the order trials ended) and optimizer steps (phase 2 and 3, to
each trial's last report) until the best finished configuration includes demo-polarity, the
task that helps; sweeps already under ``--storage`` are read, not run again. Per seed it also
gives the least two-phase could spend to find it as soon as today did (``_floor``): the
trials before the finding one are mostly TPE's seeded start-up trials, the same configs in
both schemes, and each costs its start-up before its first rung. ``storage``
(c): one finished demo sweep of each scheme: bytes written per trial (file versions seen by
polling the sweep folder every 0.5 s: a lower bound) and bytes left, the Train runs'
checkpoint folders apart.

``cost-model`` (d): GPU-hours of a paper-base sweep (64 trials, XNLI), a *model*: each
trial's phase-2 and phase-3 steps as the surrogate sweeps ran them (``--surrogate`` JSON of
``surrogate --preset paper-base``) × FLOPs per step (``benchmarks/throughput.py``'s
6·N + 12·L·h·s per token; tokens per example from ``benchmarks/paper_scale.py``'s synthetic
lengths; phase 2 mixes each trial's tasks by its own mixing) + probes and evaluations, at
an assumed sustained throughput (``--tflops``).

``tune-state`` (e): 1,000 surrogate trials reporting (i) only ``TUNE_KEYS`` and (ii) those
and 15 languages × 8 per-language metrics, as model trials reported before issue 16: size
of Tune's ``experiment_state-*.json`` per trial and the time of one snapshot
(``TuneController.save_to_dir``, timed in the driver) as the sweep grows.

``tune-breakdown`` (f): a finished sweep's ``experiment_state-*.json`` per trial, split into
what our report keys cost (their ``last_result`` entries and Tune's running statistics of
them) and what Tune keeps of every trial whatever it reports (its own result keys' statistics,
the pickled storage context and checkpoint manager, the config, the JSON's indentation).

CPU only, except what ``demo``/``storage`` trials use; not part of the test command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: the presets' ASHA before issue 16: rungs in phase-3 steps
TODAY = {"demo": {"two_phase": False, "asha_grace": 20, "asha_reduction": 2},
         "paper-base": {"two_phase": False, "asha_grace": 4000}}
TODAY_TRIAL = {"demo": ["eval_every=20"], "paper-base": []}
SCHEMES = ("today", "two-phase")
#: words per sequence, sequences per example (choices), special tokens per sequence: the means
#: of ``benchmarks/paper_scale.py``'s synthetic corpora (e.g. MNLI premise 20 + hypothesis 10)
SHAPES = {"mnli": (30, 1, 4), "xnli": (30, 1, 4), "anli": (65, 1, 4), "qqp": (22, 1, 4),
          "sst2": (10, 1, 2), "squad": (130, 1, 4), "ccg": (24, 1, 2),
          "hellaswag": (50, 4, 4), "cosmosqa": (87, 4, 4), "commonsenseqa": (15, 5, 4)}
TOKENS_PER_WORD = 1.35  # XLM-R on English (paper_scale.Words)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def _median(values: list[float | None]) -> float | None:
    """The median, None (not reached) sorting last; None when the median is not reached."""
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    n = len(ordered)
    mid = ordered[(n - 1) // 2], ordered[n // 2]
    if None in mid:
        return None
    return (mid[0] + mid[1]) / 2


def _fmt(v: float | None, unit: str = "") -> str:
    return "not reached" if v is None else f"{v:,.0f}{unit}"


# -- (d)'s FLOPs, used by (a) for paper-base too ---------------------------------------------------
def _encoder(size: str):
    from benchmarks.throughput import DIMS

    return SimpleNamespace(**DIMS[size])


def example_tokens(task: str, max_length: int) -> tuple[float, float]:
    """Tokens of one example of ``task`` and its sequences' length (each capped)."""
    words, seqs, special = SHAPES[task]
    length = min(max_length, words * TOKENS_PER_WORD + special)
    return seqs * length, length


def step_flops(mix: dict[str, float], *, size: str, batch: int, max_length: int) -> float:
    """Training FLOPs of one step of a batch drawn from ``mix`` (task → probability)."""
    from benchmarks.throughput import flops_per_token

    enc, total = _encoder(size), 0.0
    for task, p in mix.items():
        tokens, length = example_tokens(task, max_length)
        per_token = flops_per_token(enc, [[0] * int(round(length))])
        total += p * batch * tokens * per_token
    return total


def forward_flops(task: str, examples: int, *, size: str, max_length: int) -> float:
    """Forward FLOPs of scoring ``examples`` (a third of training's 6·N per token)."""
    from benchmarks.throughput import flops_per_token

    tokens, length = example_tokens(task, max_length)
    return examples * tokens * flops_per_token(_encoder(size), [[0] * int(round(length))]) / 3


def trial_flops(row: dict, cfg) -> dict[str, float]:
    """FLOPs of a surrogate-swept paper trial as a model trial would spend them."""
    from benchmarks.paper_scale import ROWS
    from spaces.tasks import get_task
    from trainables.mixing import task_probabilities

    sizes = {t: ROWS[t]["train"] for t in cfg.intermediate_tasks}
    mix = task_probabilities(cfg.mixing, sizes=sizes, logits=cfg.mixing_logits(),
                             temperature=cfg.mixing_temperature, cap=cfg.examples_cap)
    kw = dict(size=cfg.model_size, max_length=cfg.max_length)
    target = get_task(cfg.target)
    f2 = step_flops(mix, batch=cfg.batch_size, **kw)
    f3 = step_flops({target.name: 1.0}, batch=cfg.batch_size, **kw)
    languages = len(target.languages)
    probe = (cfg.probe_steps * f3
             + forward_flops(target.name, cfg.probe_eval_examples * languages, **kw))
    # an evaluation: every language's dev set (XNLI: 2,490 each), English dev fits T
    evaluation = forward_flops(target.name, 2_490 * (languages + 1), **kw)
    return {"phase2": row["s2"] * f2, "phase3": row["s3"] * f3,
            "probes": row["probes"] * probe, "evals": row["evals"] * evaluation,
            "full": row["s2_full"] * f2 + row["s3_full"] * f3 + evaluation,
            "phase2_full": row["s2_full"] * f2, "phase3_full": row["s3_full"] * f3,
            "per_step": (f2, f3)}


# -- (a) surrogate sweeps ---------------------------------------------------------------------
def surrogate_sweep(preset_name: str, scheme: str, seed: int, *, trials: int | None,
                    seconds: float, storage: str, rungs: tuple[int, float] | None = None) -> dict:
    """One sweep; per trial (in the order trials ended) what it ran and reported. ``rungs``:
    two-phase's ASHA at (grace, reduction) instead of the preset's."""
    from search.results import config_from_row, read_table
    from search.sweep import SweepPlan, run_sweep
    from spaces.config import TrialConfig
    from spaces.presets import load_preset
    from trainables.surrogate import surrogate_metrics, surrogate_optimum, surrogate_phases

    preset = load_preset(preset_name)
    trial_sets = ["use_gpu=false"]  # surrogate trials hold no GPU here
    changes = dict(TODAY[preset_name]) if scheme == "today" else {}
    if rungs and scheme == "two-phase":
        changes.update(asha_grace=rungs[0], asha_reduction=rungs[1])
    if trials:
        changes["trials"] = trials
    base = preset.trial_config(trial_sets)
    sweep = preset.sweep_config(trial_sets, trainable="surrogate", seed=seed,
                                surrogate_seconds=seconds, **changes)
    plan = SweepPlan(storage=storage, name=f"{preset_name}-{scheme}-{seed}", base=base,
                     sweep=sweep)
    t0 = time.perf_counter()
    run_sweep(plan)
    wall = time.perf_counter() - t0
    history: dict[str, list[int]] = {}
    for h in read_table(plan.path, "history").to_pylist():
        history.setdefault(h["trial_id"], []).append(h["budget"])
    rows = []
    for r in sorted(read_table(plan.path, "trials").to_pylist(), key=lambda r: r["finished_at"]):
        cfg = TrialConfig.from_dict(config_from_row(r))
        s2_full, s3_full = surrogate_phases(cfg)
        b = r["budget"]
        s2, s3 = (min(b, s2_full), b - min(b, s2_full)) if sweep.two_phase else (s2_full, b)
        probes = sum(1 for x in history.get(r["trial_id"], [])
                     if sweep.two_phase and x <= s2_full and s3_full > 0)
        rows.append({"trial_id": r["trial_id"], "status": r["status"], "score": r["objective"],
                     "true_score": surrogate_metrics(cfg, noise=0.0)["score"],
                     "budget": b, "s2": s2, "s3": s3, "s2_full": s2_full, "s3_full": s3_full,
                     "probes": probes, "evals": len(history.get(r["trial_id"], [])) - probes,
                     "config": cfg.to_dict()})
    return {"preset": preset_name, "scheme": scheme, "seed": seed, "wall_s": wall,
            "optimum": surrogate_optimum(sweep.space, base.objective_weight),
            "sweep": {k: v for k, v in sweep.to_dict().items() if k != "space"}, "trials": rows}


def reach(run: dict, margin: float, weight=lambda r: r["s2"] + r["s3"], *,
          judge: str = "score") -> float | None:
    """Cost (``weight`` of each trial, summed in end order) until the sweep's best finished
    trial (by its reported score) is within ``margin`` of the optimum; None if the sweep never
    got there. ``judge``: "score" judges the best trial by its reported (noisy) score,
    "true_score" by its noise-free value, i.e. by what the sweep would hand its user."""
    spent, best = 0.0, None
    for r in run["trials"]:
        spent += weight(r)
        if r["status"] == "finished" and (best is None or r["score"] > best["score"]):
            best = r
        if best is not None and best[judge] >= run["optimum"] - margin:
            return spent
    return None


def cmd_surrogate(args) -> None:
    if args.from_json:  # the report again, from the trials runs kept (--json)
        report_surrogate(kept_runs(args.from_json, args.first),
                         [float(m) for m in args.margins.split(",")])
        return
    from search.local_ray import ensure_ray

    ensure_ray(num_cpus=2, log_to_driver=False)
    storage = args.storage or tempfile.mkdtemp(prefix="xstilts-cost-")
    runs, t0 = [], time.perf_counter()
    for seed in _seeds(args.seeds):
        for scheme in args.schemes.split(","):
            run = surrogate_sweep(args.preset, scheme, seed, trials=args.trials,
                                  seconds=args.seconds, storage=storage,
                                  rungs=args.rungs)
            runs.append(run)
            print(f"  seed {seed} {scheme:<9}: {len(run['trials'])} trials in "
                  f"{run['wall_s']:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs))
    if {r["scheme"] for r in runs} == set(SCHEMES):  # one scheme alone: kept to pair, --from-json
        report_surrogate(runs, [float(m) for m in args.margins.split(",")])
    print(f"({time.perf_counter() - t0:.0f} s; sweeps under {storage})")


def kept_runs(files: list[str], first: int | None = None) -> list[dict]:
    """The sweeps that ``--json`` runs kept, each cut to the first ``first`` trials that
    ended. From several files a sweep's seed becomes ``FILE/SEED`` (the file's place in
    ``files``): a seed run twice is two pairs, as its trials end in a different order."""
    runs = []
    for i, name in enumerate(files):
        for run in json.loads(Path(name).read_text()):
            if first:
                run["trials"] = run["trials"][:first]
            if len(files) > 1:
                run["seed"] = f"{i}/{run['seed']}"
            runs.append(run)
    return runs


def report_surrogate(runs: list[dict], margins: list[float]) -> None:
    from spaces.config import TrialConfig

    first = runs[0]
    print(f"\n(a) surrogate sweeps, {first['preset']} space: {len(first['trials'])} trials, "
          f"concurrency {first['sweep']['concurrency']}, seeds "
          f"{sorted({r['seed'] for r in runs})}; optimum {first['optimum']:.4f}")
    for scheme in SCHEMES:
        s = next(r["sweep"] for r in runs if r["scheme"] == scheme)
        print(f"  {scheme:<9}: two_phase={s['two_phase']}, asha_grace={s['asha_grace']}, "
              f"asha_reduction={s['asha_reduction']}")
    weights = {"steps": lambda r: r["s2"] + r["s3"]}
    if first["preset"].startswith("paper"):
        flops = {}
        for run in runs:
            for r in run["trials"]:
                f = trial_flops(r, TrialConfig.from_dict(r["config"]))
                flops[id(r)] = f["phase2"] + f["phase3"] + f["probes"] + f["evals"]
        weights["PFLOP (model, incl. probes and evaluations)"] = lambda r: flops[id(r)] / 1e15
    by = {(r["seed"], r["scheme"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    judges = {"score": "the best finished score", "true_score": "the noise-free value of the "
              "best finished trial"}
    for (label, weight), judge in [(w, "score") for w in weights.items()] + \
            [(("steps", weights["steps"]), "true_score")]:
        for margin in margins:
            print(f"\n  cost in {label} until {judges[judge]} is within {margin} of the "
                  f"optimum (summed over trials in the order they ended)")
            print(f"  {'seed':>4}  {'today':>16}  {'two-phase':>16}  ratio")
            ratios, cols = [], {s: [] for s in SCHEMES}
            for seed in seeds:
                a, b = (reach(by[seed, s], margin, weight, judge=judge) for s in SCHEMES)
                cols["today"].append(a)
                cols["two-phase"].append(b)
                ratio = b / a if a and b is not None else None
                ratios.append(ratio)
                print(f"  {seed:>4}  {_fmt(a):>16}  {_fmt(b):>16}  "
                      f"{'-' if ratio is None else f'{ratio:.2f}'}")
            ma, mb = _median(cols["today"]), _median(cols["two-phase"])
            both = [r for r in ratios if r is not None]
            print(f"  median {_fmt(ma):>16}  {_fmt(mb):>16}  "
                  f"{'-' if not (ma and mb) else f'{mb / ma:.2f}'} (ratio of medians); median of "
                  f"per-seed ratios {statistics.median(both):.2f} over {len(both)} seeds"
                  if both else f"  median {_fmt(ma):>16}  {_fmt(mb):>16}")
            lo, hi = _bootstrap_ratio(cols["today"], cols["two-phase"])
            print(f"  ratio of medians, 90% bootstrap interval over seeds: {lo:.2f} to {hi:.2f}")
    print("\n  whole sweeps (mean over seeds):")
    print(f"  {'scheme':<9}  {'stopped':>7}  {'in ph.2':>7}  {'phase-2 steps run':>20}  "
          f"{'phase-3 steps run':>20}  {'probes':>6}  {'evals':>6}  best: gap seen / true")
    for scheme in SCHEMES:
        rs = [r for r in runs if r["scheme"] == scheme]

        def mean(f):
            return statistics.mean(sum(f(t) for t in r["trials"]) for r in rs)

        s2, s2f = mean(lambda t: t["s2"]), mean(lambda t: t["s2_full"])
        s3, s3f = mean(lambda t: t["s3"]), mean(lambda t: t["s3_full"])
        stopped = mean(lambda t: t["status"] == "stopped")
        in_2 = mean(lambda t: t["status"] == "stopped" and t["s3"] == 0)
        print(f"  {scheme:<9}  {stopped:>7.1f}  {in_2:>7.1f}  {s2:>10,.0f} ({s2 / s2f:4.0%})  "
              f"{s3:>10,.0f} ({s3 / s3f:4.0%})  {mean(lambda t: t['probes']):>6.1f}  "
              f"{mean(lambda t: t['evals']):>6.1f}  "
              f"{_best_gap(rs, 'score'):.4f} / {_best_gap(rs, 'true_score'):.4f}")
    print("  (percent: of the steps the same trials would run unstopped; best: the optimum minus "
          "the best finished trial's score, as seen and noise-free)")


def _best_gap(runs: list[dict], key: str) -> float:
    """The optimum minus the best finished trial's ``key`` (by its reported score), the mean
    over ``runs``."""
    return statistics.mean(
        r["optimum"] - max((t for t in r["trials"] if t["status"] == "finished"),
                           key=lambda t: t["score"])[key] for r in runs)


def _bootstrap_ratio(today: list, two_phase: list, *, draws: int = 2000) -> tuple[float, float]:
    """5th and 95th percentiles of the ratio of medians (two-phase / today) over seeds drawn
    with replacement, each seed's pair kept together; a median not reached counts as
    infinite (a ratio of 0 when only today's is, inf when two-phase's is)."""
    rng = random.Random(0)
    n, ratios = len(today), []
    for _ in range(draws):
        pick = [rng.randrange(n) for _ in range(n)]
        a, b = _median([today[i] for i in pick]), _median([two_phase[i] for i in pick])
        ratios.append(math.inf if b is None else 0.0 if a is None else b / a)
    ratios.sort()
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


# -- (a'): where the rungs go, replayed ------------------------------------------------------------
def replay_rungs(run: dict, grace: int, reduction: float, *, early_noise: float = 0.0) -> dict:
    """``run`` (a stored two-phase surrogate sweep) with its trials judged again by ASHA
    with rungs ``grace · reduction^k``: Ray's own bracket (``_Bracket``, the one
    ``ASHAScheduler`` keeps, with the sweep's ``max_t``), fed each trial's surrogate value at
    each rung below its end, trials one after another in the order they ended. The configs
    stay those the sweep drew: a sweep run with these rungs would draw others (its searcher
    learns from other stops), and its concurrent trials would meet a rung in another order.

    ``early_noise``: a what-if for the surrogate's probe, whose noise does not depend on how
    far phase 2 has gone: a probe at phase-2 progress ``f`` gets N(0, early_noise·(1 − f))
    more (seeded by the config and the rung), so early probes rank configs worse."""
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.schedulers.async_hyperband import _Bracket

    from search.sweep import MAX_BUDGET
    from spaces.config import TrialConfig
    from spaces.objective import SCORE_KEY
    from spaces.sweep import SweepConfig
    from trainables.surrogate import surrogate_curve, surrogate_metrics

    bracket = _Bracket(grace, MAX_BUDGET, reduction, 0)
    placement = SweepConfig(asha_grace=grace, asha_reduction=reduction)
    trials = []
    for k, t in enumerate(run["trials"]):
        cfg, total = TrialConfig.from_dict(t["config"]), t["s2_full"] + t["s3_full"]
        at, status, score = total, "finished", None
        for rung in placement.rungs(total):  # where a trial reports (search.sweep's schedule)
            value = surrogate_curve(cfg, rung, two_phase=True)[SCORE_KEY]
            if rung <= t["s2_full"] and t["s3_full"] and early_noise:  # a probe
                rng = random.Random(f"{cfg.config_hash()}/early/{rung}")
                value += rng.gauss(0.0, early_noise * (1 - rung / t["s2_full"]))
            if bracket.on_result(SimpleNamespace(trial_id=str(k)), rung, value) == \
                    TrialScheduler.STOP:
                at, status, score = rung, "stopped", value
                break
        if status == "finished":
            score = surrogate_metrics(cfg)[SCORE_KEY]
        s2 = min(at, t["s2_full"])
        kept = {k: v for k, v in t.items() if k not in ("probes", "evals")}  # as stored: stale
        trials.append({**kept, "status": status, "budget": at, "s2": s2, "s3": at - s2,
                       "score": score})
    sweep = {**run["sweep"], "asha_grace": grace, "asha_reduction": reduction}
    return {**run, "sweep": sweep, "trials": trials}


def _placements(text: str) -> list[tuple[int, float]]:
    """``--rungs``: GRACE:REDUCTION pairs, e.g. ``4000:3,2000:3``."""
    try:
        pairs = [(int(g), float(rf)) for g, rf in (v.split(":") for v in text.split(","))]
    except ValueError:
        pairs = []
    if not pairs or any(g < 1 or not rf > 1 for g, rf in pairs):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected GRACE:REDUCTION pairs, a whole first rung >= 1 and a factor > 1, "
            "comma-separated, e.g. 4000:3,2000:3")
    return pairs


def _placement(text: str) -> tuple[int, float]:
    """``surrogate --rungs``: one GRACE:REDUCTION pair."""
    pairs = _placements(text)
    if len(pairs) != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one GRACE:REDUCTION pair, e.g. "
                                         "2000:3; run one sweep per placement")
    return pairs[0]


def cmd_rungs(args) -> None:
    runs = kept_runs(args.from_json, args.first)
    today = {r["seed"]: r for r in runs if r["scheme"] == "today"}
    two = {r["seed"]: r for r in runs if r["scheme"] == "two-phase"}
    seeds = sorted(set(today) & set(two))
    margins = [float(m) for m in args.margins.split(",")]
    if not seeds:
        sys.exit(f"--from-json {' '.join(args.from_json)}: expected today's and two-phase's "
                 "sweeps of the same seeds, as `sweep_cost.py surrogate --json F` keeps them")
    first = two[seeds[0]]["sweep"]
    variants = [("as run", None)] + [
        (f"{g}:{rf:g}" + (" (the sweep's)" if (g, rf) == (first["asha_grace"],
                                                          first["asha_reduction"]) else ""),
         (g, rf)) for g, rf in args.rungs]
    print(f"(a') two-phase ASHA replayed with other rungs over {len(seeds)} stored sweeps' configs "
          f"({len(two[seeds[0]]['trials'])} trials each), against today's stored sweeps"
          + (f"; probes at phase-2 progress f get N(0, {args.early_noise}·(1 − f)) more"
             if args.early_noise else ""))
    print(f"  {'grace:reduction':<24}" + "".join(f"  {'within ' + str(m):>22}" for m in margins)
          + f"  {'steps/sweep':>11}  {'vs today':>8}  {'best: true gap':>14}")

    def whole(rs):
        return statistics.mean(sum(t["s2"] + t["s3"] for t in r["trials"]) for r in rs)

    base = whole(today.values())
    reached = {m: [reach(today[s], m) for s in seeds] for m in margins}  # today's, per margin
    for label, v in variants:
        replayed = {s: two[s] if v is None else replay_rungs(two[s], *v,
                                                             early_noise=args.early_noise)
                    for s in seeds}
        cells = []
        for m, a in reached.items():
            b = [reach(replayed[s], m) for s in seeds]
            ma, mb = _median(a), _median(b)
            lo, hi = _bootstrap_ratio(a, b)
            cells.append("-" if not (ma and mb) else f"{mb / ma:.2f} [{lo:.2f}, {hi:.2f}]")
        gap = _best_gap(list(replayed.values()), "true_score")
        steps = whole(replayed.values())
        print(f"  {label:<24}" + "".join(f"  {c:>22}" for c in cells)
              + f"  {steps / 1e6:>10.2f}M  {steps / base:>8.2f}  {gap:>14.4f}")
    print(f"  (ratio of median steps until the best finished score is within the margin, "
          f"two-phase / today, 90% bootstrap interval; today: {base / 1e6:.2f}M steps/sweep)")


# -- (d) the paper-base cost model ------------------------------------------------------------
def cmd_cost_model(args) -> None:
    from spaces.config import TrialConfig

    runs = [r for r in kept_runs([args.surrogate]) if r["preset"].startswith("paper")]
    if not runs:
        raise SystemExit(f"{args.surrogate} holds no paper-base sweeps; run "
                         "`sweep_cost.py surrogate --preset paper-base --json FILE` first")
    rate = args.tflops * 1e12
    hours = lambda flops: flops / rate / 3600  # noqa: E731
    print(f"(d) cost MODEL of a paper-base sweep ({len(runs[0]['trials'])} trials, XNLI, "
          f"XLM-R base): steps from {len(runs) // 2} surrogate sweeps per scheme, FLOPs per step "
          f"from benchmarks/throughput.py's formula, at an ASSUMED sustained {args.tflops:g} "
          f"TFLOP/s per GPU ({args.tflops / 989:.0%} of an H100's bf16 dense peak)")
    one = TrialConfig.from_dict(runs[0]["trials"][0]["config"])
    f2_all = []
    table = {}
    for scheme in SCHEMES:
        parts = {k: [] for k in ("phase2", "phase3", "probes", "evals", "full", "phase2_full",
                                 "phase3_full")}
        for run in (r for r in runs if r["scheme"] == scheme):
            sums = dict.fromkeys(parts, 0.0)
            for t in run["trials"]:
                f = trial_flops(t, TrialConfig.from_dict(t["config"]))
                f2_all.append(f["per_step"][0])
                for k in parts:
                    sums[k] += f[k]
            for k in parts:
                parts[k].append(sums[k])
        table[scheme] = {k: statistics.mean(v) for k, v in parts.items()}
    f3 = trial_flops(runs[0]["trials"][0], one)["per_step"][1]
    print(f"  FLOPs per step: phase 2 {statistics.mean(f2_all) / 1e12:.2f} TFLOP (mean over the "
          f"swept trials' task mixes; {statistics.mean(f2_all) / f3:.1f}× phase 3), phase 3 "
          f"{f3 / 1e12:.2f} TFLOP (XNLI, batch {one.batch_size})")
    print(f"  GPU-hours per sweep (mean over seeds); in brackets: the share of the same trials' "
          "FLOPs run unstopped")
    print(f"  {'scheme':<18} {'phase 2':>14} {'phase 3':>14} {'probes':>7} {'evals':>7} "
          f"{'total':>7}")
    full = {s: table[s]["full"] for s in SCHEMES}
    print(f"  {'no early stopping':<18} {'':>14} {'':>14} {'':>7} {'':>7} "
          f"{hours(statistics.mean(full.values())):>7.2f}")
    for scheme in SCHEMES:
        row = table[scheme]
        row["total"] = sum(row[k] for k in ("phase2", "phase3", "probes", "evals"))
        share2 = row["phase2"] / row["phase2_full"]
        share3 = row["phase3"] / row["phase3_full"]
        print(f"  {scheme:<18} {hours(row['phase2']):>7.2f} ({share2:4.0%}) "
              f"{hours(row['phase3']):>7.2f} ({share3:4.0%}) {hours(row['probes']):>7.3f} "
              f"{hours(row['evals']):>7.3f} {hours(row['total']):>7.2f}")
    f2 = statistics.mean(f2_all)
    print(f"  two-phase / today: {table['two-phase']['total'] / table['today']['total']:.2f} "
          f"(GPU-hours); phase 2 is {f2 * 12_500 / (f2 * 12_500 + f3 * 24_544):.0%} of a "
          "mid-range trial's training FLOPs (12.5k phase-2 steps, 24,544 XNLI steps)")
    print("  (a model: FLOPs only, no start-up, data loading, optimizer memory traffic or idle "
          "GPUs; GPU-hours scale as 1/--tflops, the ratio does not)")


# -- (b) and (c): real demo sweeps through the CLI ---------------------------------------------
def cli_sweep(scheme: str, seed: int, storage: str, *, trials: int | None = None,
              extra: list[str] = ()) -> str:
    """Run ``xstilts run demo`` for one scheme and seed; the sweep's path."""
    name = f"demo-{scheme}-{seed}"
    cmd = [sys.executable, "-m", "search.cli", "run", "demo", "--storage", storage,
           "--name", name, "--set", f"search.seed={seed}", *sum((["--set", x] for x in extra), [])]
    if scheme == "today":
        for k, v in TODAY["demo"].items():
            cmd += ["--set", f"search.{k}={str(v).lower()}"]
        for x in TODAY_TRIAL["demo"]:
            cmd += ["--set", x]
    if trials:
        cmd += ["--trials", str(trials)]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return f"{storage}/{name}"


def cmd_demo(args) -> None:
    from search.results import config_from_row, read_table
    from search.sweep import load_plan

    storage = args.storage or tempfile.mkdtemp(prefix="xstilts-demo-")
    out = {s: [] for s in SCHEMES}
    steps_out = {s: [] for s in SCHEMES}
    floor = []  # per seed: two-phase's least trial-seconds to find it, today's
    t0 = time.perf_counter()
    for seed in _seeds(args.seeds):
        ran = {}  # per scheme: its rows, each trial's first report's seconds, the find
        for scheme in SCHEMES:
            path = f"{storage}/demo-{scheme}-{seed}"
            if not os.path.exists(path):  # one already there (--storage) is read, not run again
                path = cli_sweep(scheme, seed, storage, trials=args.trials, extra=args.set)
            rows = sorted(read_table(path, "trials").to_pylist(), key=lambda r: r["finished_at"])
            first_report = {}
            for h in read_table(path, "history").to_pylist():
                t = first_report.get(h["trial_id"], math.inf)
                first_report[h["trial_id"]] = min(t, h["time_seconds"])
            spent, steps, best, found = 0.0, 0, None, None
            for i, r in enumerate(rows, 1):
                config = config_from_row(r)
                spent += r["wall_seconds"] or 0.0
                # optimizer steps the trial ran until its last report, phase 2 and 3 alike (a
                # today trial runs its whole phase 2 before its budget counts)
                steps += (r["budget"] or 0) + (0 if scheme == "two-phase"
                                               else config["intermediate_steps"])
                better = best is None or r["objective"] > best["objective"]
                if r["status"] == "finished" and better:
                    best = r
                if found is None and best is not None and \
                        "demo-polarity" in config_from_row(best)["intermediate_tasks"]:
                    found = (spent, steps, i)
            ran[scheme] = SimpleNamespace(rows=rows, first_report=first_report, found=found)
            out[scheme].append(found and found[0])
            steps_out[scheme].append(found and found[1])
            print(f"  seed {seed} {scheme:<9}: until the best includes demo-polarity "
                  f"{_fmt(found and found[0], ' trial-s')}, "
                  f"{_fmt(found and found[1], ' steps')}"
                  f"{f', at trial {found[2]}' if found else ''}; whole sweep "
                  f"{spent:,.0f} trial-s, {steps:,} steps over {len(rows)} trials", flush=True)
        floor.append(_floor(ran["two-phase"], ran["today"]))
        f = floor[-1]
        if f:
            startup = load_plan(path).sweep.startup_trials  # the same in both schemes
            print(f"  seed {seed}: of today's first {f['k']} trials, {f['same']} were drawn by "
                  f"two-phase too (the first {startup}: TPE's start-up); had two-phase "
                  f"found it at trial {f['k']} with every earlier trial stopped at its first "
                  f"report: {f['least']:,.0f} trial-s, {f['least'] / f['today']:.2f} of today's")
    kind = "surrogate" if "search.trainable=surrogate" in args.set else "real"
    for what, got, unit in (("trial-seconds", out, " s"), ("optimizer steps", steps_out, "")):
        ma, mb = _median(got["today"]), _median(got["two-phase"])
        print(f"(b) demo, {kind} trials: median {what} until the best finished config includes "
              f"demo-polarity: today {_fmt(ma, unit)}, two-phase {_fmt(mb, unit)}"
              + (f", ratio {mb / ma:.2f}" if ma and mb else ""))
    least = [f["least"] / f["today"] for f in floor if f]
    if least:
        print(f"    the least two-phase could spend (every trial before today's finding one "
              f"stopped at its first report): median {statistics.median(least):.2f} of today's")
    print(f"({time.perf_counter() - t0:.0f} s; sweeps under {storage})")


def _floor(two_phase, today) -> dict | None:
    """What two-phase could at best have spent to find the helpful task as soon as today did:
    the same finding trial run to its end, every trial that ended before it stopped at its
    first report (the first rung; ASHA stops nothing earlier; a config two-phase did not draw
    costs its cheapest trial's first report). ``same``: how many of today's trials until
    then two-phase drew too (by config hash): TPE's seeded start-up trials are the same
    configs in both schemes, so a task they find costs both about the same."""
    if not (two_phase.found and today.found):
        return None
    k = today.found[2]
    drawn = {r["config_hash"]: r for r in two_phase.rows}
    first = two_phase.first_report
    cheapest = min(first.values())  # for a config two-phase did not draw
    least = sum(first.get(drawn[r["config_hash"]]["trial_id"], cheapest)
                if r["config_hash"] in drawn else cheapest for r in today.rows[:k - 1])
    finder = today.rows[k - 1]
    least += drawn.get(finder["config_hash"], finder)["wall_seconds"]
    return {"k": k, "same": sum(r["config_hash"] in drawn for r in today.rows[:k]),
            "least": least, "today": today.found[0]}


class FolderPoll(threading.Thread):
    """Sizes of every file version seen under a folder, polled every ``period`` seconds."""

    def __init__(self, root: str, period: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.period, self.seen, self.stop = root, period, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(self.period)

    def poll(self) -> None:
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                key = (p, st.st_ino, st.st_mtime_ns)
                self.seen[key] = max(self.seen.get(key, 0), st.st_size)


def _trial_of(path: str) -> str | None:
    """The Tune trial id of a file under a Train run folder (``train/train-ID/...``)."""
    parts = Path(path).parts
    if "train" in parts:
        i = parts.index("train")
        if i + 1 < len(parts) and parts[i + 1].startswith("train-"):
            return parts[i + 1][len("train-"):]
    return None


def _is_checkpoint(path: str) -> bool:
    return any(p.startswith("checkpoint_") for p in Path(path).parts)


def cmd_storage(args) -> None:
    from search.results import read_table

    storage = args.storage or tempfile.mkdtemp(prefix="xstilts-bytes-")
    t0 = time.perf_counter()
    for scheme in SCHEMES:
        name = f"demo-{scheme}-{args.seed}"
        poll = FolderPoll(f"{storage}/{name}")
        poll.start()
        try:
            path = cli_sweep(scheme, args.seed, storage, trials=args.trials, extra=args.set)
        finally:
            poll.stop.set()
            poll.join()
        poll.poll()
        trials = read_table(path, "trials").to_pylist()
        written: dict[str, float] = {}
        ckpt_written = 0
        for (p, _, _), size in poll.seen.items():
            tid = _trial_of(p) or "(sweep)"
            written[tid] = written.get(tid, 0) + size
            ckpt_written += size if _is_checkpoint(p) else 0
        left = ckpt_left = 0
        for dirpath, _, files in os.walk(path):
            for f in files:
                size = os.path.getsize(os.path.join(dirpath, f))
                left += size
                ckpt_left += size if _is_checkpoint(os.path.join(dirpath, f)) else 0
        per_trial = [v for k, v in written.items() if k != "(sweep)"]
        mib = 2 ** 20
        print(f"(c) {scheme:<9} ({len(trials)} trials): written {sum(written.values()) / mib:.1f} "
              f"MiB ({ckpt_written / mib:.1f} MiB in checkpoint folders), per trial "
              f"{statistics.mean(per_trial) / mib if per_trial else 0:.2f} MiB mean, "
              f"{max(per_trial, default=0) / mib:.2f} MiB max; sweep's own files "
              f"{written.get('(sweep)', 0) / mib:.1f} MiB; left on storage {left / mib:.1f} MiB "
              f"({ckpt_left / mib:.1f} MiB in checkpoint folders)", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s; sweeps under {storage}; written = file versions "
          "seen by a 0.5 s poll, a lower bound)")


# -- (e) Tune's experiment state ----------------------------------------------------------------
LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi",
             "zh")  # XNLI's 15
PER_LANGUAGE = ("accuracy", "ece", "mce", "brier", "nll", "ece_ts", "brier_ts", "nll_ts")


def wide_surrogate_trial(params, **kw):
    """``surrogate_trial`` whose reports also carry 15 languages × 8 metrics."""
    import random

    import ray.tune

    from search.tune_trials import surrogate_trial

    real = ray.tune.report
    rng = random.Random(str(sorted(params.items())))

    def report(metrics, **k):
        extra = {f"{lang}/{m}": rng.random() for lang in LANGUAGES for m in PER_LANGUAGE}
        return real({**metrics, **extra}, **k)

    ray.tune.report = report
    try:
        surrogate_trial(params, **kw)
    finally:
        ray.tune.report = real


def cmd_tune_state(args) -> None:
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(args.period)  # before search.sweep reads it
    import search.sweep
    from ray.tune.execution.tune_controller import TuneController

    from search.local_ray import ensure_ray
    from spaces.presets import load_preset

    saves: list[tuple[int, float]] = []
    original = TuneController.save_to_dir

    def timed(self):
        t = time.perf_counter()
        original(self)
        saves.append((len(self._trials), time.perf_counter() - t))

    TuneController.save_to_dir = timed
    ensure_ray(num_cpus=2, log_to_driver=False)
    storage = args.storage or tempfile.mkdtemp(prefix="xstilts-state-")
    preset = load_preset("paper-base")
    plain = search.sweep.surrogate_trial
    results = {}
    for label, fn in (("(i) TUNE_KEYS only", plain),
                      ("(ii) + 15 languages x 8 metrics", wide_surrogate_trial)):
        search.sweep.surrogate_trial = fn
        saves.clear()
        sweep = preset.sweep_config(["use_gpu=false"], trainable="surrogate", sampler="random",
                                    trials=args.trials, concurrency=4,
                                    surrogate_seconds=args.seconds)
        plan = search.sweep.SweepPlan(storage=storage, name=f"state-{len(results)}",
                                      base=preset.trial_config(["use_gpu=false"]), sweep=sweep)
        t0 = time.perf_counter()
        search.sweep.run_sweep(plan)
        wall = time.perf_counter() - t0
        state = sorted(Path(plan.path, search.sweep.TUNE_DIR).glob("experiment_state-*.json"))[-1]
        text = state.read_text()
        t = time.perf_counter()
        json.dumps(json.loads(text))
        dumps = time.perf_counter() - t
        last = [s for n, s in saves if n >= 0.9 * args.trials]
        results[label] = (state.stat().st_size, dumps, last, saves[:], wall)
        search.sweep.surrogate_trial = plain
    print(f"\n(e) Tune's experiment state at {args.trials} surrogate trials (paper-base space, "
          f"random sampler, snapshot period {args.period} s)")
    for label, (size, dumps, last, all_saves, wall) in results.items():
        curve = ", ".join(f"{n}: {s * 1000:.0f} ms" for n, s in
                          all_saves[::max(1, len(all_saves) // 6)])
        print(f"  {label}: {size / 1024:,.0f} KB, {size / 1024 / args.trials:.1f} KB per trial; "
              f"json loads+dumps of it {dumps:.3f} s; a snapshot (save_to_dir) at ≥90% of the "
              f"trials {statistics.median(last) if last else float('nan'):.3f} s median over "
              f"{len(last)}; sweep {wall:.0f} s, {len(all_saves)} snapshots "
              f"({sum(s for _, s in all_saves):.1f} s in them)")
        print(f"    snapshot time by trials so far: {curve}")
    print(f"(sweeps under {storage})")


def cmd_tune_breakdown(args) -> None:
    from spaces.objective import TUNE_KEYS

    state = sorted(Path(args.sweep, "tune").glob("experiment_state-*.json"))[-1]
    raw = state.read_text()
    data = json.loads(raw)
    n = len(data["trial_data"])

    def size(trial_data) -> int:  # as Tune writes it: each trial's runtime part is a JSON
        return len(json.dumps({**data, "trial_data": trial_data}))  # string (indent 2) inside

    def without(runtime: str, keys) -> str:
        meta = json.loads(runtime)
        for k in ("last_result", "metric_analysis", "metric_n_steps"):
            meta[k] = {m: v for m, v in meta[k].items() if m not in keys}
        return json.dumps(meta, indent=2)

    exact = size(data["trial_data"])
    tune_only = size([[st, without(rt, TUNE_KEYS)] for st, rt in data["trial_data"]])
    print(f"(f) {state}: {len(raw):,} bytes for {n} trials, {len(raw) / n / 1024:.2f} KB per "
          f"trial (re-serialised: {exact / n / 1024:.2f} KB)")
    print(f"  our report keys ({', '.join(k for k in TUNE_KEYS)} where sent): "
          f"{(exact - tune_only) / n / 1024:.2f} KB per trial; what Tune keeps of a trial "
          f"whatever it reports: {tune_only / n / 1024:.2f} KB per trial, of which")
    runtime_only = size([[json.dumps({}), without(rt, TUNE_KEYS)] for _, rt in data["trial_data"]])
    print(f"    the trial's static part (pickled storage context, config, resources, "
          f"experiment tag): {(tune_only - runtime_only) / n / 1024:.2f} KB")
    meta = [json.loads(without(rt, TUNE_KEYS)) for _, rt in data["trial_data"]]
    for k in ("metric_n_steps", "metric_analysis", "checkpoint_manager", "last_result"):
        part = sum(len(json.dumps(json.dumps(m[k], indent=2))) for m in meta)
        print(f"    {k} (Tune's own keys only): {part / n / 1024:.2f} KB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("surrogate", help="(a) surrogate sweeps, today vs two-phase")
    s.add_argument("--preset", default="paper-base", choices=("paper-base", "demo"))
    s.add_argument("--seeds", default="0-9", help="search.seed values: 0-9 or 0,3,5")
    s.add_argument("--trials", type=int, default=None, help="default: the preset's")
    s.add_argument("--seconds", type=float, default=1.0,
                   help="search.surrogate_seconds: the longest trial's seconds")
    s.add_argument("--margins", default="0.005,0.01,0.02")
    s.add_argument("--json", default=None, help="keep every trial here (for cost-model)")
    s.add_argument("--from-json", nargs="+", default=None, metavar="FILE",
                   help="report on the trials of --json files (several: pooled, a pair per "
                        "file and seed)")
    s.add_argument("--first", type=int, default=None,
                   help="with --from-json: each sweep's first N trials to end only")
    s.add_argument("--storage", default=None)
    s.add_argument("--schemes", default=",".join(SCHEMES), choices=(*SCHEMES, ",".join(SCHEMES)),
                   help="run one scheme only (its sweeps go to --json, to pair with another "
                        "run's in one file)")
    s.add_argument("--rungs", type=_placement, default=None, metavar="GRACE:REDUCTION",
                   help="two-phase's ASHA rungs instead of the preset's")
    w = sub.add_parser("rungs", help="(a') two-phase's rungs placed elsewhere, replayed")
    w.add_argument("--from-json", nargs="+", required=True, metavar="FILE",
                   help="`surrogate --json` files (today's and two-phase's sweeps)")
    w.add_argument("--first", type=int, default=None, help="each sweep's first N trials only")
    w.add_argument("--rungs", type=_placements, default="4000:3,3000:3,2000:3,4000:2,4000:4",
                   help="GRACE:REDUCTION,... (the budget of the first rung, the factor)")
    w.add_argument("--margins", default="0.005,0.01")
    w.add_argument("--early-noise", type=float, default=0.0,
                   help="a what-if: a probe at phase-2 progress f gets N(0, X·(1 − f)) more")
    d = sub.add_parser("cost-model", help="(d) paper-base GPU-hours, a model")
    d.add_argument("--surrogate", required=True, help="JSON of `surrogate --preset paper-base`")
    d.add_argument("--tflops", type=float, default=150.0,
                   help="assumed sustained training TFLOP/s per GPU (default 150: an H100 at "
                        "~15%% of its 989 TFLOP/s bf16 dense peak, batch-32 steps of a 278M "
                        "encoder on short sequences)")
    for name, text in (("demo", "(b) real demo sweeps"), ("storage", "(c) a demo sweep's bytes")):
        r = sub.add_parser(name, help=text)
        if name == "demo":
            r.add_argument("--seeds", default="0-2")
        else:
            r.add_argument("--seed", type=int, default=0)
        r.add_argument("--trials", type=int, default=None, help="default: the preset's")
        r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="more --set items for both schemes")
        r.add_argument("--storage", default=None)
    e = sub.add_parser("tune-state", help="(e) Tune's snapshot per trial")
    e.add_argument("--trials", type=int, default=1000)
    e.add_argument("--seconds", type=float, default=0.05)
    e.add_argument("--period", type=float, default=1.0, help="TUNE_GLOBAL_CHECKPOINT_S")
    e.add_argument("--storage", default=None)
    f = sub.add_parser("tune-breakdown", help="(f) whose bytes Tune's state holds, per trial")
    f.add_argument("sweep", help="a finished sweep's folder (STORAGE/NAME)")
    args = p.parse_args()
    if args.cmd == "surrogate" and args.rungs and "two-phase" not in args.schemes.split(","):
        p.error(f"--rungs {args.rungs[0]}:{args.rungs[1]:g} places two-phase's rungs, but "
                f"--schemes {args.schemes} runs no two-phase sweep: drop --rungs, or run "
                f"--schemes two-phase")
    os.environ.setdefault("XSTILTS_TUNE_VERBOSE", "0")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    {"surrogate": cmd_surrogate, "rungs": cmd_rungs, "cost-model": cmd_cost_model, "demo": cmd_demo,
     "storage": cmd_storage, "tune-state": cmd_tune_state,
     "tune-breakdown": cmd_tune_breakdown}[args.cmd](args)


if __name__ == "__main__":
    main()
