"""The ``xstilts`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from spaces.config import ConfigError
from spaces.errors import UnknownNameError
from spaces.presets import load_preset, preset_names
from trainables.storage import StorageFullError


class UsageError(Exception):
    """Bad input from the command line: printed as one message, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="xstilts: %(message)s")
    try:
        return args.func(args)
    except (UsageError, ConfigError, UnknownNameError, FileNotFoundError) as exc:
        print(f"xstilts: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xstilts: interrupted", file=sys.stderr)
        return 130
    except StorageFullError as exc:  # an operating condition: say it once, no traceback
        print(f"xstilts: error: {exc}", file=sys.stderr)
        return 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xstilts", description=(
        "Search over English intermediate tasks, mixing weights and model sizes for the best "
        "and best-calibrated zero-shot cross-lingual transfer (X-STILTs)."))
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("trial", help="train and score one configuration",
                       description="Run one trial (phase 2 intermediate tasks, phase 3 target, "
                                   "zero-shot evaluation) through Ray Train and print its scores.")
    t.add_argument("preset", help=f"a shipped preset ({', '.join(preset_names())}) or a YAML file")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial-config key, e.g. --set seed=3 --set intermediate_tasks=[a,b]")
    t.add_argument("--storage", default="xstilts-runs",
                   help="folder (or pyarrow URI) for checkpoints (default: ./xstilts-runs)")
    t.add_argument("--name", default=None, help="run name (default: trial-CONFIGHASH-TIME)")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    t.set_defaults(func=_cmd_trial)

    r = sub.add_parser("run", help="start a sweep (extend one: resume --trials N)",
                       description="Search with Ray Tune + Optuna (+ ASHA); results go to "
                                   "STORAGE/NAME/results/*.parquet as trials finish.")
    r.add_argument("preset", help=f"a shipped preset ({', '.join(preset_names())}) or a YAML file")
    r.add_argument("--storage", default="xstilts-runs", help="folder or pyarrow URI (s3://...)")
    r.add_argument("--name", default=None, help="sweep name (default: the preset's name)")
    r.add_argument("--trials", type=int, default=None, help="trial budget (default: the preset's)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial-config key, or a sweep key as search.KEY=VALUE")
    r.add_argument("--warm-start", action="append", default=[], metavar="STORAGE/OTHER",
                   help="seed the sampler with an earlier sweep's finished trials that fit this "
                        "space, and reuse its results for configs it finished (repeatable)")
    r.add_argument("--log-to", action="append", default=[], metavar="TRACKER",
                   help="also log every trial (config and metrics, one run each) through Ray "
                        "Tune's callbacks: mlflow (an SQLite store, STORAGE/NAME/mlflow.db), "
                        "mlflow:TRACKING_URI, or wandb (offline mode); repeatable")
    r.add_argument("--verbose", action="store_true",
                   help="show Ray's, Tune's and the trials' own output too (by default it goes "
                        "to STORAGE/NAME/logs/)")
    r.add_argument("-k", type=int, default=5, help="rows of the final best-configs table")
    r.set_defaults(func=_cmd_run)

    st = sub.add_parser("status", help="where a sweep stands, from any shell",
                        description="Read-only, from any machine that reaches the storage: "
                                    "running (driver host, pid, last heartbeat), interrupted "
                                    "or finished; trials by status, the best so far, budget "
                                    "left, recent errors. Never blocks a running sweep.")
    st.add_argument("sweep", help="STORAGE/NAME of a sweep (a folder or a URI such as s3://)")
    st.add_argument("--json", action="store_true", help="print the numbers as JSON")
    st.set_defaults(func=_cmd_status)

    rs = sub.add_parser("resume", help="continue a sweep whose driver stopped",
                        description="Continue the sweep at STORAGE/NAME where it stopped: recorded "
                                    "trials are kept and never rerun, unfinished ones continue "
                                    "from their last checkpoint, the sampler keeps every result.")
    rs.add_argument("sweep", help="STORAGE/NAME of the sweep (a folder or a URI)")
    rs.add_argument("--trials", type=int, default=None, metavar="N",
                    help="raise the sweep's trial budget to N (extend a finished or "
                         "interrupted sweep: N minus the recorded trials run, the sampler "
                         "keeps everything it learned)")
    rs.add_argument("--verbose", action="store_true",
                    help="show Ray's, Tune's and the trials' own output too")
    rs.add_argument("-k", type=int, default=5, help="rows of the final best-configs table")
    rs.set_defaults(func=_cmd_resume)

    sm = sub.add_parser("similarity", help="estimate how much each intermediate task helps",
                        description="Before any trial: for each intermediate task of PRESET's "
                                    "space and its target, LogME of the target's English labels "
                                    "on an encoder briefly trained on the task, and the text "
                                    "embedding similarity of the two tasks "
                                    "(trainables.similarity). Written to "
                                    "STORAGE/NAME/similarity.parquet, where `xstilts run` with "
                                    "--set search.priors=similarity finds it.")
    sm.add_argument("preset", help=f"a shipped preset ({', '.join(preset_names())}) or a YAML file")
    sm.add_argument("--storage", default="xstilts-runs", help="folder or pyarrow URI (s3://...)")
    sm.add_argument("--name", default=None, help="sweep name (default: the preset's name)")
    sm.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="as for run: a trial-config key, or search.KEY=VALUE "
                         "(search.similarity_steps, search.similarity_examples)")
    sm.add_argument("--seeds", type=int, default=1,
                    help="estimates per task, from the preset's seed on (default 1)")
    sm.add_argument("--quiet", action="store_true", help="no progress bar")
    sm.add_argument("--json", action="store_true", help="print the rows as JSON")
    sm.set_defaults(func=_cmd_similarity)

    pr = sub.add_parser("prepare", help="fill this node's model, dataset and token caches",
                        description="Download every model and dataset a sweep of PRESET can "
                                    "use and tokenize every split its trials read, once, into "
                                    "the node's caches (HF_HOME, $XSTILTS_CACHE/tokens): "
                                    "trials then run offline (HF_HUB_OFFLINE=1, "
                                    "HF_DATASETS_OFFLINE=1).")
    pr.add_argument("preset", help=f"a shipped preset ({', '.join(preset_names())}) or a YAML file")
    pr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="the trial-config keys the sweep will set (max_length, target, "
                         "eval_languages, ...), or search.space.KEY=VALUE")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_prepare)

    tk = sub.add_parser("tasks", help="list the task registry",
                        description="The tasks trials can use: name, role, format, data source, "
                                    "languages (the training language first) and metric.")
    tk.add_argument("--role", choices=("intermediate", "target"), help="only tasks of this role")
    tk.add_argument("--json", action="store_true", help="one JSON object per task")
    tk.set_defaults(func=_cmd_tasks)

    for cmd, text in (("best", "the best configurations by the scalar objective"),
                      ("pareto", "the accuracy/ECE Pareto front")):
        q = sub.add_parser(cmd, help=text, description=f"Print {text} of a sweep.")
        q.add_argument("sweep", help="STORAGE/NAME of a sweep")
        if cmd == "best":
            q.add_argument("-k", type=int, default=5, help="how many (default 5)")
        q.add_argument("--json", action="store_true", help="JSON rows with the full config")
        q.set_defaults(func=_cmd_query, query=cmd)

    ef = sub.add_parser("effects", help="what each intermediate task and parameter does",
                        description="Per intermediate task: the mean effect of including it on "
                                    "the objective, zero-shot accuracy and ECE over the finished "
                                    "trials, with a bootstrap interval; then Optuna's parameter "
                                    "importances (PED-ANOVA) for the objective.")
    ef.add_argument("sweep", help="STORAGE/NAME of a sweep")
    ef.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    ef.add_argument("--languages", action="store_true",
                    help="effects on each language's metrics (which tasks help which language)")
    ef.add_argument("--metric", action="append", default=None, metavar="NAME",
                    help="a metric to measure (repeatable); default: objective, zs_accuracy, "
                         "zs_ece, or with --languages accuracy and ece")
    ef.add_argument("--json", action="store_true",
                    help='{"task_effects": [rows], "importances": {param: share}}')
    ef.set_defaults(func=_cmd_effects)

    rp = sub.add_parser("report", help="the sweep's answers on one page (HTML + PNGs)",
                        description="Write one self-contained HTML page (figures inline, nothing "
                                    "fetched) and each figure as a PNG: search progress, "
                                    "accuracy vs calibration, what each task does, languages, "
                                    "reliability diagrams, cost. Works on a running sweep (what "
                                    "is recorded so far).")
    rp.add_argument("sweep", help="STORAGE/NAME of a sweep (local or a URI such as s3://)")
    rp.add_argument("--out", default=None, metavar="DIR",
                    help="folder for report.html and figures/ (default: STORAGE/NAME/report for "
                         "a local sweep, ./report-NAME for a remote one)")
    rp.add_argument("--open", action="store_true", help="open the page in a browser")
    rp.add_argument("--json", action="store_true",
                    help="print the numbers behind each section instead (no page written)")
    rp.set_defaults(func=_cmd_report)

    ex = sub.add_parser("export-optuna", help="write a sweep as an Optuna study",
                        description="Write the sweep's trials into an Optuna storage as a new "
                                    "study (parameters with their distributions, values, pruned "
                                    "trials with their intermediate values), for optuna-dashboard "
                                    "or optuna.load_study.")
    ex.add_argument("sweep", help="STORAGE/NAME of a sweep")
    ex.add_argument("url", help="an Optuna storage URL, e.g. sqlite:///sweep.db")
    ex.add_argument("--study-name", default=None, help="default: the sweep's NAME")
    ex.set_defaults(func=_cmd_export_optuna)
    return p


def _split_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """``--set`` items: the trial config's, and the sweep's (``search.KEY=VALUE``) parsed."""
    import yaml

    trial_sets = [o for o in overrides if not o.startswith("search.")]
    sweep_changes: dict[str, Any] = {}
    for item in overrides:
        if item.startswith("search."):
            key, sep, raw = item[len("search."):].partition("=")
            if not sep:
                raise UsageError(f"--set {item!r} is not search.KEY=VALUE")
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                raise UsageError(f"--set {item!r}: the value is not valid YAML") from None
            if key.startswith("space."):  # search.space.tasks=[a, b]
                space = dict(sweep_changes.get("space") or {})  # merged over the preset's
                space[key[len("space."):]] = value
                sweep_changes["space"] = space
            else:
                sweep_changes[key] = value
    return trial_sets, sweep_changes


def _cmd_prepare(args: argparse.Namespace) -> int:
    from search.prepare import prepare

    preset = load_preset(args.preset)
    trial_sets, sweep_changes = _split_overrides(args.overrides)
    sweep = preset.sweep_config(trial_sets, **sweep_changes)
    from trainables.data import DataUnavailableError
    from trainables.retry import FetchError

    try:
        done = prepare(preset.trial_config(trial_sets), sweep, progress=not args.quiet)
    except (DataUnavailableError, FetchError, OSError) as exc:
        raise UsageError(f"could not prepare {preset.name}: {exc}") from None
    print(f"xstilts: prepared {preset.name}: models {', '.join(done.models)}; {done.splits} "
          f"splits in the token cache ({done.cache_bytes / 2**20:.1f} MiB on disk) in "
          f"{done.seconds:.1f} s", flush=True)
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from search.similarity import compute_similarity, similarity_path, write_similarity
    from search.tables import exists

    preset = load_preset(args.preset)
    trial_sets, sweep_changes = _split_overrides(args.overrides)
    base = preset.trial_config(trial_sets)
    sweep = preset.sweep_config(trial_sets, **sweep_changes)
    if args.seeds < 1:
        raise UsageError(f"--seeds {args.seeds}: expected at least 1 estimate per task")
    storage = _storage_path(args.storage)
    path = f"{storage.rstrip('/')}/{args.name or preset.name}"
    if exists(similarity_path(path)):
        raise UsageError(f"{similarity_path(path)} already exists and is kept as it is; move it "
                         "aside to compute it again, or choose another --name")
    if sweep.trainable == "model":
        _preflight([base.target, *sweep.space.tasks], [base.model_size])
        from search.local_ray import ensure_ray

        ensure_ray(include_dashboard=False)
    _check_storage(storage)
    start = time.monotonic()
    frame = compute_similarity(base, sweep, seeds=range(base.seed, base.seed + args.seeds),
                               progress=not args.quiet)
    written = write_similarity(frame, path)
    if args.json:
        import json

        print(json.dumps(frame.to_dict("records"), indent=1, default=_plain))
        return 0
    print(format_similarity(frame))
    print(f"xstilts: {len(frame)} estimates in {time.monotonic() - start:.1f} s -> {written}")
    return 0


def format_similarity(frame) -> str:
    """Per intermediate task, best first: the estimate (mean over seeds, and its spread),
    how it was made, LogME's gain over the pretrained encoder, the text similarity."""
    table = frame.groupby(["target", "intermediate", "method"], as_index=False).agg(
        estimate=("estimate", "mean"), spread=("estimate", "std"), seeds=("seed", "nunique"),
        logme_gain=("logme_gain", "mean"), text_cosine=("text_cosine", "mean"))
    table = table.sort_values(["target", "estimate"], ascending=[True, False], kind="stable")
    return table.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _cmd_run(args: argparse.Namespace) -> int:
    from search.sweep import SweepPlan

    preset = load_preset(args.preset)
    trial_sets, sweep_changes = _split_overrides(args.overrides)
    if args.trials is not None:
        sweep_changes["trials"] = args.trials
    plan = SweepPlan(storage=_storage_path(args.storage), name=args.name or preset.name,
                     base=preset.trial_config(trial_sets),
                     sweep=preset.sweep_config(trial_sets, **sweep_changes),
                     warm_start=tuple(_storage_path(p).rstrip("/") for p in args.warm_start))
    if plan.sweep.trainable == "model":  # surrogate trials load no data and no model
        _preflight([plan.base.target, *plan.sweep.space.tasks], plan.sweep.space.model_sizes)
    _check_storage(plan.storage)
    from search.results import exists
    from search.sweep import MANIFEST, TUNE_DIR

    # a folder that holds only what comes before a sweep (its similarity estimates) is fine
    if any(exists(f"{plan.path}/{part}") for part in (MANIFEST, TUNE_DIR, "results")):
        raise UsageError(f"a sweep already exists at {plan.path}; its results are kept as they "
                         f"are. To continue it: xstilts resume {plan.path}   To start another: "
                         "choose a new --name")
    if plan.warm_start:  # an earlier sweep that does not compare stops here, before anything
        from search.study import comparable_sources

        comparable_sources(plan)
    print(f"xstilts: sweep {plan.path}: {plan.sweep.trials} trials, {plan.sweep.concurrency} at a "
          f"time, {plan.sweep.sampler} sampler, mode {plan.sweep.mode}", flush=True)
    from search.sweep import tracker_callbacks

    try:
        tracker_callbacks(plan, args.log_to)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"{exc}" if isinstance(exc, ValueError) else
                         f"--log-to needs its tracker's package ({exc}); install the extra: "
                         "pip install 'xstilts[mlflow]' (or wandb)") from None
    return _launch(plan, resume=False, k=args.k, log_to=args.log_to, verbose=args.verbose)


def _cmd_resume(args: argparse.Namespace) -> int:
    from search.results import TABLES, ResultsError, read_table
    from search.sweep import can_resume, load_plan

    path = _storage_path(args.sweep).rstrip("/")
    plan = load_plan(path)
    _refuse_if_driven(path)
    raised = args.trials is not None and args.trials != plan.sweep.trials
    if args.trials is not None:
        plan = _extended(plan, args.trials)  # checked here, written just before the launch
    tables = {}
    for table in TABLES:  # unreadable results stop the resume before anything is written
        try:
            tables[table] = read_table(path, table)
        except ResultsError as exc:
            raise UsageError(str(exc)) from None
    if tables["trials"] is not None and tables["trials"].num_rows >= plan.sweep.trials:
        from search.query import best, load_sweep

        print(f"xstilts: sweep {path} is complete ({tables['trials'].num_rows} trials recorded, "
              f"budget {plan.sweep.trials}); nothing to resume")
        print(format_trials(best(load_sweep(path), k=args.k)))
        return 0
    if not can_resume(path):
        raise UsageError(f"{path} has no Tune experiment state to resume from (the driver "
                         "stopped before its first snapshot); start it again with "
                         f"`xstilts run --name {plan.name}` after moving the folder aside")
    if plan.sweep.trainable == "model":  # surrogate trials load no data and no model
        _preflight([plan.base.target, *plan.sweep.space.tasks], plan.sweep.space.model_sizes)
    _check_storage(plan.storage)
    if raised:  # the manifest keeps the new budget for every later resume
        from search.sweep import raise_budget

        raise_budget(plan.path, plan.sweep.trials)
    print(f"xstilts: resuming sweep {plan.path}: budget {plan.sweep.trials} trials"
          f"{' (raised)' if raised else ''}", flush=True)
    recorded = tables["trials"].num_rows if tables["trials"] is not None else 0
    return _launch(plan, resume=True, k=args.k, verbose=args.verbose, recorded=recorded)


def _extended(plan, trials: int):
    """``plan`` with its budget raised to ``trials``; the same budget again changes nothing."""
    from dataclasses import replace

    if trials < plan.sweep.trials:
        raise UsageError(f"--trials {trials}: the sweep's budget is already {plan.sweep.trials} "
                         "trials; give a larger N to extend it (trials are never taken back)")
    if trials == plan.sweep.trials:
        return plan
    if plan.sweep.arms:
        raise UsageError(f"--trials {trials}: {plan.path} is a designed sweep (search.arms), "
                         "whose budget is its arms x seeds x sizes; to run more, start a new "
                         "sweep with more seeds")
    return replace(plan, sweep=plan.sweep.replace(trials=trials))


def _launch(plan, *, resume: bool, k: int, log_to: Sequence[str] = (), verbose: bool = False,
            recorded: int = 0) -> int:
    from search.console import quiet_driver
    from search.local_ray import ensure_ray
    from search.query import best, load_sweep
    from search.results import ResultsError
    from search.status import DrivenError
    from search.sweep import run_sweep

    logging.getLogger("xstilts").setLevel(logging.INFO)
    try:
        with quiet_driver(plan.path, plan.sweep.trials, recorded=recorded,
                          verbose=verbose) as (console, _):
            import ray

            started = not ray.is_initialized()
            ensure_ray()
            try:
                run_sweep(plan, resume=resume, log_to=list(log_to), console=console)
            finally:
                if started:  # the Ray this command started, and its last forwarded lines,
                    ray.shutdown()  # end while they still go to the log
    except DrivenError as exc:  # another driver holds the sweep (nothing was started)
        raise UsageError(str(exc)) from None
    try:
        top = best(load_sweep(plan.path), k=k)
    except ResultsError as exc:
        print(f"xstilts: {exc}", file=sys.stderr)
        return 1
    print(f"\nbest configurations of {plan.path}:")
    print(format_trials(top))
    return 0


def _refuse_if_driven(sweep_path: str) -> None:
    from search.status import DrivenError, refuse_if_driven

    try:
        refuse_if_driven(sweep_path)
    except DrivenError as exc:
        raise UsageError(str(exc)) from None


def _cmd_query(args: argparse.Namespace) -> int:
    from search.query import best, pareto
    from search.results import config_from_row

    sweep = _load(args.sweep, read=False)
    rows = best(sweep, k=args.k) if args.query == "best" else pareto(sweep)
    if args.json:
        import json

        out = [{**{k: _plain(v) for k, v in r.items() if not k.startswith("config/")},
                "config": config_from_row(r)} for r in rows.to_dict("records")]
        print(json.dumps(out, indent=2, default=_plain))
    else:
        print(format_trials(rows))
    return 0


def _load(path: str, *, read: bool = True):
    """A sweep to read, or a UsageError that says why not. ``read``: read its trials table
    now (``best`` and ``pareto`` read only the columns they rank by)."""
    from search.query import load_sweep
    from search.results import ResultsError

    try:
        sweep = load_sweep(path)
        if read:
            sweep.trials  # noqa: B018 - so a sweep without results fails here
        return sweep
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError:
        raise
    except OSError as exc:  # an unreachable or refusing S3 endpoint
        raise UsageError(f"cannot read the sweep at {path!r} ({exc})") from None


def _cmd_effects(args: argparse.Namespace) -> int:
    import json
    import warnings

    import optuna

    from search.report import importances, task_effects
    from search.results import ResultsError

    sweep = _load(args.sweep)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        effects = task_effects(sweep, level=args.level, metrics=args.metric,
                               per_language=args.languages)
    except (ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    shares, missing = None, None
    try:
        with warnings.catch_warnings():  # PED-ANOVA warns of thin regimes on small sweeps
            warnings.simplefilter("ignore", UserWarning)
            shares = importances(sweep)
    except ResultsError as exc:  # tables without their manifest: no space to rebuild
        missing = str(exc)
    if args.json:
        print(json.dumps({"task_effects": effects.to_dict("records"), "importances": shares,
                          **({"importances_missing": missing} if missing else {})},
                         indent=2, default=_plain))
        return 0
    print(f"effect of including each task (finished trials with - without it; "
          f"{args.level:.0%} bootstrap interval):")
    lang = "language" in effects.columns
    print(f"{'task':<16}{'language  ' if lang else ''}{'metric':<13}{'effect':>9}  "
          f"{'interval':<20}{'with':>6}{'without':>8}")
    for r in effects.to_dict("records"):
        interval = "-" if r["low"] != r["low"] else f"[{r['low']:+.4f}, {r['high']:+.4f}]"
        effect = "-" if r["effect"] != r["effect"] else f"{r['effect']:+.4f}"
        print(f"{r['task']:<16}{r['language'] if lang else '':<{10 if lang else 0}}{r['metric']:<13}"
              f"{effect:>9}  {interval:<20}{r['n_with']:>6}{r['n_without']:>8}")
    print("\nparameter importances for the objective (Optuna PED-ANOVA, sum 1):")
    if missing:
        print(f"  (none: {missing})")
    elif not shares:
        print("  (fewer than two finished trials)")
    for name, share in (shares or {}).items():
        print(f"  {name:<28}{share:.3f}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from search.results import ResultsError
    from search.status import format_status, sweep_status

    try:
        status = sweep_status(_storage_path(args.sweep))
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        import json

        print(json.dumps(status, indent=1, default=_plain))
    else:
        print(format_status(status))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import os
    import webbrowser

    import optuna

    from search.page import json_numbers, report_numbers, write_report
    from search.results import ResultsError

    sweep = _load(args.sweep, read=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    try:
        if args.json:
            print(json_numbers(report_numbers(sweep)))
            return 0
        path = write_report(sweep, args.out)
    except ResultsError as exc:  # unreadable tables, or no matplotlib for the figures
        raise UsageError(str(exc)) from None
    print(f"xstilts: report of {args.sweep} written in {time.perf_counter() - started:.1f} s: "
          f"{os.path.abspath(path)}")
    if args.open:
        webbrowser.open(f"file://{os.path.abspath(path)}")
    return 0


def _cmd_export_optuna(args: argparse.Namespace) -> int:
    import optuna

    from search.report import export_optuna

    sweep = _load(args.sweep)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = export_optuna(sweep, args.url, study_name=args.study_name)
    except (ValueError, FileExistsError) as exc:  # no manifest (ResultsError), a URL Optuna
        raise UsageError(str(exc)) from None      # cannot open, a study already there
    print(f"xstilts: wrote {len(study.trials)} trials of {args.sweep} as study "
          f"{study.study_name!r} to {args.url}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from spaces.tasks import get_task, task_names

    rows = []
    for name in task_names(args.role):
        t = get_task(name)
        source = t.source.path + (f" [{t.source.config}]" if t.source.config else "")
        rows.append({"name": t.name, "role": t.role, "format": t.format,
                     "source": f"{t.source.kind}:{source}", "languages": list(t.languages),
                     "metric": t.metric, "description": t.description})
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'task':<16}{'role':<14}{'format':<17}{'metric':<18}{'langs':>5}  source")
    for r in rows:
        print(f"{r['name']:<16}{r['role']:<14}{r['format']:<17}{r['metric']:<18}"
              f"{len(r['languages']):>5}  {r['source']}")
    return 0


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, float) and v != v:
        return None
    return v


def format_trials(df) -> str:
    """A compact table of trials: objective, accuracy, ECE and what was chosen."""
    if df.empty:
        return "(no finished trials)"
    lines = [f"{'trial':<14}{'score':>8}{'zs_acc':>8}{'zs_ece':>8}  {'model':<6}{'lr':>9}  tasks (mixing)"]
    for r in df.to_dict("records"):
        raw = r.get("config/intermediate_tasks")
        tasks = [] if raw is None else list(raw)
        weights = {t: r.get(f"config/weights/{t}") for t in tasks}
        mix = r.get("config/mixing") if len(tasks) > 1 else "-"
        if mix == "softmax":
            mix = "softmax " + ", ".join(f"{w:+.2f}" for w in weights.values() if w == w and w is not None)
        lines.append(f"{r['trial_id']:<14}{r['objective']:>8.4f}{r['zs_accuracy']:>8.3f}"
                     f"{r['zs_ece']:>8.3f}  {r['config/model_size']:<6}{r['config/learning_rate']:>9.2e}"
                     f"  {'+'.join(tasks)} ({mix})")
    return "\n".join(lines)


def _cmd_trial(args: argparse.Namespace) -> int:
    config = load_preset(args.preset).trial_config(args.overrides)
    storage = _storage_path(args.storage)
    name = args.name or f"trial-{config.config_hash()}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"xstilts: trial {name}: target {config.target}, intermediate "
          f"{', '.join(config.intermediate_tasks) or '(none)'}, model {config.model_size}",
          flush=True)

    _preflight([config.target, *config.intermediate_tasks], [config.model_size])
    _check_storage(storage)
    from ray.train import TrainingFailedError

    from search.local_ray import ensure_ray
    from trainables.trial import run_trial

    ensure_ray()
    try:
        result = run_trial(config, storage_path=storage, name=name)
    except TrainingFailedError as exc:
        from search.failures import root_cause

        print(f"xstilts: trial failed: {root_cause(exc)}", file=sys.stderr)
        return 1
    metrics = result.metrics or {}
    if args.json:
        import json

        print(json.dumps({"name": name, "config": config.to_dict(), "metrics": metrics},
                         indent=2, default=str))
    else:
        print(format_language_table(metrics, train_language=_train_language(config.target),
                                    weight=config.objective_weight))
        print(f"checkpoints: {result.path}")
    return 0


def format_language_table(metrics: Mapping[str, Any], *, train_language: str, weight: float) -> str:
    """The per-language accuracy/ECE table and the objective, as printed by ``trial``."""
    from spaces.objective import SCORE_KEY

    langs = [k.split("/")[0] for k in metrics if k.endswith("/accuracy")]
    lines = [f"{'language':<10}{'accuracy':>10}{'ECE':>8}{'ECE(TS)':>9}  role"]
    for lang in langs:
        role = "train (English dev)" if lang == train_language else "zero-shot"
        lines.append(f"{lang:<10}{metrics[f'{lang}/accuracy']:>10.3f}{metrics[f'{lang}/ece']:>8.3f}"
                     f"{metrics[f'{lang}/ece_ts']:>9.3f}  {role}")
    lines.append(f"{'zero-shot':<10}{metrics['zs_accuracy']:>10.3f}{metrics['zs_ece']:>8.3f}"
                 f"{metrics['zs_ece_ts']:>9.3f}  macro mean")
    lines.append(f"objective: score = zs_accuracy - {weight:g} * zs_ece = {metrics[SCORE_KEY]:.4f}"
                 f"   (temperature fitted on English dev: {metrics['temperature']:.3f})")
    return "\n".join(lines)


def _train_language(target: str) -> str:
    from spaces.tasks import get_task

    return get_task(target).train_language


def _storage_path(raw: str) -> str:
    """An absolute path or a URI; created and probed only once the run is cleared to start."""
    return raw if "://" in raw else str(Path(raw).expanduser().resolve())


def _preflight(tasks, model_sizes) -> None:
    from spaces.models import get_model_size
    from trainables.preflight import preflight

    problems = preflight(tasks, [get_model_size(m).checkpoint for m in model_sizes])
    if problems:
        raise UsageError("this run cannot start:\n" + "\n".join(f"  - {p}" for p in problems))


def _check_storage(storage: str) -> None:
    from search.sweep import check_storage

    try:
        check_storage(storage)
    except PermissionError as exc:
        raise UsageError(str(exc)) from None


if __name__ == "__main__":
    sys.exit(main())
