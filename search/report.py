"""What a sweep's rows say: task effects, parameter importances, the sweep as an Optuna
study, and the numbers of its progress, cost and languages.

    >>> from search import load_sweep, task_effects, importances, study_from_sweep
    >>> sweep = load_sweep("xstilts-runs/demo")
    >>> task_effects(sweep)              # per task: mean effect of including it, bootstrap CI
    >>> task_effects(sweep, per_language=True)   # which tasks help which languages
    >>> importances(sweep)               # Optuna's PED-ANOVA over the space's parameters
    >>> progress(sweep), statuses(sweep), cost(sweep), language_view(sweep, "ece")
    >>> reliability(sweep)               # the best trial's reliability diagrams, per language
    >>> study_from_sweep(sweep)          # an in-memory optuna.Study of the sweep's trials
    >>> export_optuna("xstilts-runs/demo", "sqlite:///demo.db")   # for optuna-dashboard

The study (``search.study``) is rebuilt from the Parquet rows.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from search.query import SweepResults, best, load_sweep
from search.results import ResultsError
from search.study import export_optuna, study_from_sweep, sweep_plan as _plan  # noqa: F401 - API
from spaces.space import SpaceSpec

#: the columns whose effects ``task_effects`` measures by default
EFFECT_METRICS = ("objective", "zs_accuracy", "zs_ece")
#: the per-language metrics ``task_effects(per_language=True)`` measures by default
LANGUAGE_METRICS = ("accuracy", "ece")
#: which way each of them is better
BETTER = {"objective": "max", "zs_accuracy": "max", "zs_ece": "min", "zs_ece_ts": "min"}


def _sweep(sweep: SweepResults | str) -> SweepResults:
    return load_sweep(sweep) if isinstance(sweep, str) else sweep


def target_languages(sweep: SweepResults) -> pd.DataFrame:
    """The languages table's rows of the sweep's target (not those of its out-of-domain
    sets, ``domain_shift``'s)."""
    langs, t = sweep.languages, sweep.trials
    if len(langs) and len(t) and "config/target" in t:
        return langs[langs["task"].isin(set(t["config/target"]))]
    return langs


def _finished(sweep: SweepResults) -> pd.DataFrame:
    t = sweep.trials
    return t[t["status"] == "finished"] if len(t) else t


# -- what each intermediate task does ---------------------------------------------------------
def task_effects(sweep: SweepResults | str, *, metrics: Sequence[str] | None = None,
                 per_language: bool = False, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> pd.DataFrame:
    """For each intermediate task and metric: the mean over finished trials that include the
    task minus the mean over those that do not, with a percentile bootstrap interval
    (``n_boot`` resamples of each group, at ``level``).

    ``metrics``: trials columns (default ``EFFECT_METRICS``: objective, zero-shot accuracy and
    ECE), or with ``per_language`` metrics of the languages table (default accuracy and ece),
    measured per language: which tasks help which languages.

    One row per (task, metric) or (task, language, metric): ``effect``, ``low``, ``high``,
    ``n_with``, ``n_without``. A task in every finished trial, or in none, has no effect to
    measure: its row has NaN effect and interval, and its counts say why. It is a marginal
    comparison, not a causal one: in a searched sweep, trials with and without a task also
    differ in what else the sampler chose with it.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level!r}: expected a confidence level between 0 and 1, e.g. 0.95")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r}: expected a positive number of bootstrap resamples")
    sweep = _sweep(sweep)
    done = _finished(sweep)
    values = (_per_language if per_language else _per_trial)(sweep, done, metrics)
    included = [set(ts) for ts in done["config/intermediate_tasks"]] if len(done) else []
    matrix = values.to_numpy(dtype=float).reshape(len(values), len(values.columns))
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2
    rows = []
    for task in _tasks(sweep, done):
        has = np.array([task in s for s in included], dtype=bool)
        with_, without = matrix[has], matrix[~has]
        n_with, n_without = (np.sum(~np.isnan(m), axis=0) for m in (with_, without))
        diffs = _resampled_means(with_, n_boot, rng) - _resampled_means(without, n_boot, rng)
        with warnings.catch_warnings():  # a column with no value in a group: NaN, said below
            warnings.simplefilter("ignore", RuntimeWarning)
            effect = _means(with_) - _means(without)
            low, high = (np.nanquantile(diffs, q, axis=0) for q in (tail, 1 - tail))
        for j, column in enumerate(values.columns):
            measured = n_with[j] > 0 and n_without[j] > 0
            rows.append({"task": task, **dict(zip(values.columns.names, _tuple(column))),
                         "effect": float(effect[j]) if measured else math.nan,
                         "low": float(low[j]) if measured else math.nan,
                         "high": float(high[j]) if measured else math.nan,
                         "n_with": int(n_with[j]), "n_without": int(n_without[j])})
    return pd.DataFrame(rows, columns=["task", *values.columns.names, "effect", "low", "high",
                                       "n_with", "n_without"])


def _tuple(column: Any) -> tuple:
    return column if isinstance(column, tuple) else (column,)


def _per_trial(sweep: SweepResults, done: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    """Finished trials (in ``done``'s order) x metric."""
    metrics = list(metrics or EFFECT_METRICS)
    missing = [m for m in metrics if m not in sweep.trials.columns]
    if missing:
        raise ResultsError(f"task_effects: no column {', '.join(map(repr, missing))} in the "
                           f"trials of {sweep.path}; choose from {', '.join(EFFECT_METRICS)}")
    out = done[metrics].reset_index(drop=True)
    out.columns.name = "metric"
    return out


def _per_language(sweep: SweepResults, done: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    """Finished trials (in ``done``'s order) x (language, metric), from the languages table."""
    metrics = list(metrics or LANGUAGE_METRICS)
    langs = target_languages(sweep)
    known = set(langs["metric"].unique()) if len(langs) else set()
    missing = [m for m in metrics if m not in known]
    if missing:
        raise ResultsError(f"task_effects: no per-language metric {', '.join(map(repr, missing))} "
                           f"in the languages table of {sweep.path}; it has "
                           f"{', '.join(sorted(known)) or 'no rows'}")
    part = langs[langs["metric"].isin(metrics) & langs["trial_id"].isin(done["trial_id"])]
    wide = part.pivot_table(index="trial_id", columns=["language", "metric"], values="value")
    return wide.reindex(done["trial_id"]).reset_index(drop=True)


def _means(values: np.ndarray) -> np.ndarray:
    return np.nanmean(values, axis=0) if len(values) else np.full(values.shape[1], math.nan)


def _resampled_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Column means (NaN left out) of ``n_boot`` resamples of the rows with replacement:
    (n_boot, columns). Each resample is a row of counts, so every column shares its draws
    and one matrix product gives all of them; chunks of ~4M draws bound the memory."""
    n, c = values.shape
    if n == 0:
        return np.full((n_boot, c), math.nan)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    chunk = max(1, 4_000_000 // n)
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((counts @ filled) / (counts @ present))
    return np.concatenate(out)


def _spec(sweep: SweepResults) -> SpaceSpec | None:
    plan = _plan(sweep)
    return plan.sweep.space if plan is not None else None


def _tasks(sweep: SweepResults, done: pd.DataFrame) -> list[str]:
    """The space's tasks in its order, where the sweep has a manifest; else those seen."""
    spec = _spec(sweep)
    if spec is not None:
        return list(spec.tasks)
    seen: dict[str, None] = {}
    for ts in done.get("config/intermediate_tasks", []):
        seen.update(dict.fromkeys(ts))
    return sorted(seen)


def importances(sweep: SweepResults | str, *,
                evaluator: optuna.importance.BaseImportanceEvaluator | None = None,
                target: str = "objective") -> dict[str, float]:
    """Optuna's parameter importances (PED-ANOVA unless ``evaluator`` is given) over the
    sweep's finished trials, for ``target`` (a trials column: objective, zs_accuracy,
    zs_ece, zs_ece_ts): how much each parameter decides whether a trial is among the best
    for it (PED-ANOVA looks for low values, so a metric to maximise is handed over negated).
    An empty dict when fewer than two trials finished."""
    sweep = _sweep(sweep)
    return importances_of(sweep, study_from_sweep(sweep), evaluator=evaluator, target=target)


def importances_of(sweep: SweepResults, study: optuna.Study, *,
                   evaluator: optuna.importance.BaseImportanceEvaluator | None = None,
                   target: str = "objective") -> dict[str, float]:
    """``importances`` on the sweep's study already rebuilt (``study_from_sweep``)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return {}
    if target not in BETTER or target not in sweep.trials:
        raise ResultsError(f"importances: target={target!r} is not a metric of the trials of "
                           f"{sweep.path}; choose from {', '.join(BETTER)}")
    sign = -1.0 if BETTER[target] == "max" else 1.0
    by_id = dict(zip(sweep.trials["trial_id"], sweep.trials[target]))
    return optuna.importance.get_param_importances(
        study, evaluator=evaluator or optuna.importance.PedAnovaImportanceEvaluator(),
        target=lambda t: sign * float(by_id[t.user_attrs["trial_id"]]))


# -- search progress, cost, languages ---------------------------------------------------------
def progress(sweep: SweepResults | str) -> pd.DataFrame:
    """Trials in the order they were recorded: ``n`` (1-based), trial_id, status, objective,
    wall_seconds, ``trial_seconds`` (the sweep's trial-seconds so far, this trial's
    included) and ``best`` (the best finished objective so far; NaN until one finished)."""
    sweep = _sweep(sweep)
    t = sweep.trials
    cols = ["trial_id", "status", "objective", "wall_seconds"]
    if not len(t):
        return pd.DataFrame(columns=["n", *cols, "trial_seconds", "best"])
    out = t.sort_values("finished_at", kind="stable")[cols].reset_index(drop=True)
    out.insert(0, "n", np.arange(1, len(out) + 1))
    out["trial_seconds"] = out["wall_seconds"].fillna(0.0).cumsum()
    out["best"] = out["objective"].where(out["status"] == "finished").cummax().ffill()
    return out


def statuses(sweep: SweepResults | str) -> dict[str, Any]:
    """How many trials ended each way, and where errors came from: ``{"counts": {status: n},
    "errors": [{"cause": the error's last line, "trials": n, "example": a trial_id}]}``,
    causes most frequent first."""
    sweep = _sweep(sweep)
    t = sweep.trials
    counts = {s: int(n) for s, n in t["status"].value_counts().items()} if len(t) else {}
    causes: dict[str, list[str]] = {}
    for tid, status, error in (zip(t["trial_id"], t["status"], t["error"]) if len(t) else []):
        if status == "error":
            text = error if isinstance(error, str) else ""  # None, or NaN through pandas
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            causes.setdefault(lines[-1] if lines else "no error text recorded", []).append(tid)
    errors = [{"cause": c, "trials": len(ids), "example": ids[0]}
              for c, ids in sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return {"counts": counts, "errors": errors}


def cost(sweep: SweepResults | str) -> pd.DataFrame:
    """Trial-seconds by status and model size: trials, seconds (sum), mean_seconds."""
    sweep = _sweep(sweep)
    t = sweep.trials
    if not len(t):
        return pd.DataFrame(columns=["status", "model_size", "trials", "seconds", "mean_seconds"])
    frame = pd.DataFrame({"status": t["status"], "model_size": t["config/model_size"],
                          "seconds": t["wall_seconds"].fillna(0.0)})
    out = frame.groupby(["status", "model_size"], sort=True).agg(
        trials=("seconds", "size"), seconds=("seconds", "sum")).reset_index()
    out["mean_seconds"] = out["seconds"] / out["trials"]
    return out


def language_view(sweep: SweepResults | str, metric: str = "accuracy", *, k: int = 10) -> pd.DataFrame:
    """``metric`` per language (rows) for the ``k`` best finished trials by objective, then
    the best finished single-task trial of each task not among them (columns: trial ids,
    in that order);
    languages ordered by their mean zero-shot accuracy over those trials, best first.
    Empty when no finished trial was scored per language."""
    sweep = _sweep(sweep)
    done = _finished(sweep)
    langs = target_languages(sweep)
    if not len(done) or not len(langs):
        return pd.DataFrame()
    ranked = best(sweep, k=len(done))  # by objective, ties by config hash
    top = list(ranked["trial_id"][:k])
    single: dict[str, str] = {}  # task -> its best single-task trial
    for tid, ts in zip(ranked["trial_id"], ranked["config/intermediate_tasks"]):
        if len(ts) == 1 and tid not in top:
            single.setdefault(ts[0], tid)
    ids = top + list(single.values())
    known = set(langs["metric"].unique())
    if metric not in known or "accuracy" not in known:
        raise ResultsError(f"language_view: metric {metric!r} (and accuracy, which orders the "
                           f"languages) is needed; the languages table of {sweep.path} has "
                           f"{', '.join(sorted(known))}")
    part = langs[langs["trial_id"].isin(ids)]
    by_metric = {m: part[part["metric"] == m].pivot_table(index="language", columns="trial_id",
                                                          values="value")
                 for m in {metric, "accuracy"}}
    order = by_metric["accuracy"].mean(axis=1).sort_values(ascending=False).index
    wide = by_metric[metric].reindex(index=order, columns=[i for i in ids
                                                           if i in by_metric[metric].columns])
    wide.columns.name, wide.index.name = "trial_id", "language"
    return wide


def language_groups(sweep: SweepResults | str, by: str = "resource", *,
                    metrics: Sequence[str] = LANGUAGE_METRICS) -> pd.DataFrame:
    """The target's languages grouped ``by`` their metadata (``spaces.languages``: family,
    script, morphology, resource; the demo suite's pseudo-languages by how the suite builds
    them), per model size, over finished trials: ``languages`` in the group, ``trials``,
    each metric's mean over the group's languages and the trials, and ``<metric>_gap``,
    its mean difference to the same trial's English value (the training language: e.g.
    how much worse calibrated zero-shot transfer is than English). The training language
    is its own group, ``(training language)``. Empty when no finished trial was scored
    per language."""
    from spaces import languages as meta
    from spaces.tasks import get_task

    sweep = _sweep(sweep)
    done = _finished(sweep)
    langs = target_languages(sweep)
    columns = ["model_size", by, "languages", "trials",
               *(c for m in metrics for c in (m, f"{m}_gap"))]
    if not len(done) or not len(langs) or "config/target" not in done:
        return pd.DataFrame(columns=columns)
    target = get_task(str(done["config/target"].iloc[0]))
    part = langs[langs["trial_id"].isin(done["trial_id"]) & langs["metric"].isin(metrics)]
    wide = part.pivot_table(index=["trial_id", "language"], columns="metric", values="value")
    codes = sorted(set(wide.index.get_level_values("language")))
    train = target.train_language
    try:
        groups = meta.group_languages([c for c in codes if c != train], by,
                                      demo=target.source.kind == "demo")
    except (KeyError, ValueError) as exc:
        raise ResultsError(f"language_groups: {exc}") from None
    size = dict(zip(done["trial_id"], done["config/model_size"]))
    english = wide.xs(train, level="language") if train in codes else None
    rows = []
    for group, members in [("(training language)", [train] if english is not None else []),
                           *sorted(groups.items(), key=lambda g: _group_order(by, g[0]))]:
        if not members:
            continue
        sub = wide[wide.index.get_level_values("language").isin(members)].reset_index()
        sub["model_size"] = sub["trial_id"].map(size)
        for model_size, s in sub.groupby("model_size", sort=True):
            row = {"model_size": model_size, by: group, "languages": members,
                   "trials": int(s["trial_id"].nunique())}
            for m in metrics:
                row[m] = float(s[m].mean())
                gap = s[m] - (english[m].reindex(s["trial_id"]).to_numpy()
                              if english is not None else math.nan)
                row[f"{m}_gap"] = float(gap.mean())
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def domain_shift(sweep: SweepResults | str, *,
                 metrics: Sequence[str] = ("accuracy", "ece", "ece_ts")) -> pd.DataFrame:
    """In domain vs out of domain: per evaluation set (``set``: the target, then each of its
    out-of-domain sets, ``TrialConfig.ood_targets``) and model size, over finished trials:
    ``trials``, each metric's zero-shot mean (the trial's macro mean over the set's
    languages other than the training language, then the mean over trials) and
    ``<metric>_shift``, its mean difference to the same trial's in-domain value. Empty when
    no out-of-domain set was scored."""
    sweep = _sweep(sweep)
    done = _finished(sweep)
    langs = sweep.languages
    columns = ["set", "model_size", "trials", *(c for m in metrics for c in (m, f"{m}_shift"))]
    if not len(done) or not len(langs) or "config/target" not in done:
        return pd.DataFrame(columns=columns)
    target = str(done["config/target"].iloc[0])
    per = _zero_shot_means(sweep, done, metrics)
    tasks = set(per.index.get_level_values("task"))
    if tasks <= {target}:
        return pd.DataFrame(columns=columns)
    home = per.loc[target] if target in tasks else pd.DataFrame()  # none scored: no shift
    size = dict(zip(done["trial_id"], done["config/model_size"]))
    rows = []
    for task in [t for t in [target, *sorted(tasks - {target})] if t in tasks]:
        sub = per.loc[task].copy()
        sub["model_size"] = [size[t] for t in sub.index]
        for model_size, g in sub.groupby("model_size", sort=True):
            row = {"set": task, "model_size": model_size, "trials": len(g)}
            for m in metrics:
                if m in g:
                    row[m] = float(g[m].mean())
                    base = home[m].reindex(g.index) if m in home else math.nan
                    row[f"{m}_shift"] = float((g[m] - base).mean())
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


#: the per-trial metrics of a designed comparison (trials columns)
ARM_METRICS = ("zs_accuracy", "zs_ece", "zs_ece_ts")


def arm_trials(sweep: SweepResults | str) -> pd.DataFrame:
    """A designed sweep's finished trials (``search.arms``) with ``arm`` (its tasks joined
    by +), ``multi`` (more than one task), ``model_size``, ``seed``, ``ARM_METRICS`` and,
    for each out-of-domain set, ``<set>:accuracy``, ``<set>:ece``, ``<set>:ece_ts`` (its
    zero-shot means). Empty for a sweep that is not designed."""
    sweep = _sweep(sweep)
    plan = _plan(sweep)
    done = _finished(sweep)
    if plan is None or not plan.sweep.arms or not len(done):
        return pd.DataFrame(columns=["trial_id", "arm", "multi", "model_size", "seed",
                                     *ARM_METRICS])
    out = pd.DataFrame({
        "trial_id": done["trial_id"].to_numpy(),
        "arm": ["+".join(ts) for ts in done["config/intermediate_tasks"]],
        "multi": [len(ts) > 1 for ts in done["config/intermediate_tasks"]],
        "model_size": done["config/model_size"].to_numpy(),
        "seed": done["config/seed"].to_numpy(),
        **{m: done[m].to_numpy(dtype=float) for m in ARM_METRICS if m in done}})
    ood = _zero_shot_means(sweep, done, ("accuracy", "ece", "ece_ts"))
    target = str(done["config/target"].iloc[0])
    for task in sorted(set(ood.index.get_level_values("task")) - {target}):
        per = ood.loc[task]
        for m in per.columns:
            out[f"{task}:{m}"] = per[m].reindex(out["trial_id"]).to_numpy()
    return out.sort_values(["model_size", "arm", "seed"]).reset_index(drop=True)


def arm_differences(sweep: SweepResults | str, *, n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """A designed sweep's multi-task arms against its single-task arms, paired by seed (and
    model size): for each multi-task arm, each single-task arm (and ``single (mean)``, the
    mean of the single-task arms at that seed) and each metric of ``arm_trials``: ``n``
    seeds paired, the mean difference multi minus single, and a percentile bootstrap
    interval over the seeds (``n_boot`` resamples, at ``level``)."""
    trials = arm_trials(sweep)
    columns = ["model_size", "multi_arm", "single_arm", "metric", "n", "difference", "low",
               "high"]
    if not len(trials) or trials["multi"].all() or not trials["multi"].any():
        return pd.DataFrame(columns=columns)
    metrics = [c for c in trials.columns if (c in ARM_METRICS or ":" in c)
               and trials[c].notna().any()]  # (a retrieval target has no ECE after scaling)
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2
    rows = []
    for size, part in trials.groupby("model_size", sort=True):
        wide = part.pivot_table(index="seed", columns="arm", values=metrics)
        singles = sorted(part.loc[~part["multi"], "arm"].unique())
        for multi in sorted(part.loc[part["multi"], "arm"].unique()):
            for single in [*singles, "single (mean)"]:
                for m in metrics:
                    other = (wide[m][singles].mean(axis=1) if single == "single (mean)"
                             else wide[m][single])
                    d = (wide[m][multi] - other).dropna().to_numpy()
                    row = {"model_size": size, "multi_arm": multi, "single_arm": single,
                           "metric": m, "n": len(d), "difference": math.nan, "low": math.nan,
                           "high": math.nan}
                    if len(d):
                        boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
                        row.update(difference=float(d.mean()),
                                   low=float(np.quantile(boot, tail)),
                                   high=float(np.quantile(boot, 1 - tail)))
                    rows.append(row)
    return pd.DataFrame(rows, columns=columns)


# -- does similarity predict transfer? ---------------------------------------------------------
TRANSFER_METRICS = ("zs_accuracy", "zs_ece")


def similarity_transfer(sweep: SweepResults | str) -> pd.DataFrame:
    """Per intermediate task with both: its similarity estimate for the sweep's target
    (``search.similarity``: mean over the estimate's seeds; ``method``, ``logme_gain``,
    ``text_cosine`` beside it) and its measured single-task transfer: the mean over the
    finished trials that include that task alone (``trials`` of them) of each of
    ``TRANSFER_METRICS``. Best estimate first; empty without estimates or such trials."""
    from search.similarity import read_similarity

    sweep = _sweep(sweep)
    columns = ["intermediate", "estimate", "method", "logme_gain", "text_cosine", "trials",
               *TRANSFER_METRICS]
    frame = read_similarity(sweep.path)
    done = _finished(sweep)
    if frame is None or not len(done):
        return pd.DataFrame(columns=columns)
    single = done[[len(ts) == 1 for ts in done["config/intermediate_tasks"]]]
    targets = set(single["config/target"]) if len(single) else set()
    frame = frame[frame["target"].isin(targets)]
    if not len(single) or not len(frame):
        return pd.DataFrame(columns=columns)
    measured = single.assign(intermediate=[ts[0] for ts in single["config/intermediate_tasks"]])
    measured = measured.groupby("intermediate").agg(
        trials=("trial_id", "size"), **{m: (m, "mean") for m in TRANSFER_METRICS})
    estimates = frame.groupby("intermediate").agg(
        estimate=("estimate", "mean"), method=("method", "first"),
        logme_gain=("logme_gain", "mean"), text_cosine=("text_cosine", "mean"))
    out = estimates.join(measured, how="inner").reset_index()
    return out.sort_values("estimate", ascending=False, kind="stable")[columns] \
        .reset_index(drop=True)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN where either is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if len(x) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties in either variable accounted for); NaN where either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    pairs_x, pairs_y = np.count_nonzero(dx), np.count_nonzero(dy)
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    return float((dx * dy).sum() / math.sqrt(pairs_x * pairs_y))


def similarity_correlations(sweep: SweepResults | str, *, n_boot: int = 2000, level: float = 0.95,
                            seed: int = 0) -> pd.DataFrame:
    """How well the similarity estimate ranks the intermediate tasks by their measured
    single-task transfer (``similarity_transfer``'s rows): for each metric of
    ``TRANSFER_METRICS``, Spearman's rho and Kendall's tau over the ``n`` tasks, each with a
    percentile bootstrap interval over the tasks (``n_boot`` resamples, at ``level``;
    resamples with a constant side are left out). A good estimate correlates positively
    with accuracy and, where including a task costs calibration, negatively with ECE."""
    rows_in = similarity_transfer(sweep)
    columns = ["metric", "n", "spearman", "spearman_low", "spearman_high", "kendall",
               "kendall_low", "kendall_high"]
    if len(rows_in) < 3:
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2
    est = rows_in["estimate"].to_numpy(dtype=float)
    picks = rng.integers(0, len(rows_in), size=(n_boot, len(rows_in)))
    out = []
    for metric in TRANSFER_METRICS:
        value = rows_in[metric].to_numpy(dtype=float)
        row: dict[str, Any] = {"metric": metric, "n": len(rows_in)}
        for name, fn in (("spearman", spearman), ("kendall", kendall)):
            boot = np.array([fn(est[p], value[p]) for p in picks])
            boot = boot[~np.isnan(boot)]
            row[name] = fn(est, value)
            row[f"{name}_low"] = float(np.quantile(boot, tail)) if len(boot) else math.nan
            row[f"{name}_high"] = float(np.quantile(boot, 1 - tail)) if len(boot) else math.nan
        out.append(row)
    return pd.DataFrame(out, columns=columns)


def _zero_shot_means(sweep: SweepResults, done: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per (task, trial_id): each metric's macro mean over the languages other than the
    training language, from the languages table (the target's rows and its out-of-domain
    sets')."""
    from spaces.tasks import get_task

    langs = sweep.languages
    if not len(done) or not len(langs) or "config/target" not in done:
        return pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=["task", "trial_id"]))
    train = get_task(str(done["config/target"].iloc[0])).train_language
    part = langs[langs["trial_id"].isin(done["trial_id"]) & langs["metric"].isin(metrics)
                 & (langs["language"] != train)]
    return part.groupby(["task", "trial_id", "metric"])["value"].mean().unstack("metric")


def _group_order(by: str, group: str) -> tuple[int, str]:
    """Resource levels high to low, morphological types as ``spaces.languages`` lists them;
    other groups alphabetically."""
    from spaces import languages as meta

    order = {"resource": meta.RESOURCES, "morphology": meta.MORPHOLOGIES}.get(by, ())
    return (order.index(group) if group in order else len(order), group)


def reliability(sweep: SweepResults | str, trial_id: str | None = None) -> pd.DataFrame:
    """A trial's reliability diagrams (default: the best finished trial by objective): one
    row per language, scaling (``raw``, or ``ts`` after temperature scaling) and non-empty
    bin, with ``bin`` (1 = lowest confidences), ``count``, ``confidence``, ``accuracy``.
    Empty for a trial scored without bins (sweeps from before they were recorded, retrieval
    targets)."""
    sweep = _sweep(sweep)
    columns = ["language", "scaling", "bin", "count", "confidence", "accuracy"]
    if trial_id is None:
        top = best(sweep, k=1) if len(_finished(sweep)) else ()
        if not len(top):
            return pd.DataFrame(columns=columns)
        trial_id = top["trial_id"].iloc[0]
    langs = target_languages(sweep)
    part = langs[(langs["trial_id"] == trial_id) & langs["metric"].str.startswith("bin")] \
        if len(langs) else langs
    if not len(part):
        return pd.DataFrame(columns=columns)
    names = part["metric"].str.extract(r"^bin(\d+)_(count|confidence|accuracy)(_ts)?$")
    frame = pd.DataFrame({"language": part["language"].to_numpy(),
                          "scaling": np.where(names[2].notna(), "ts", "raw"),
                          "bin": names[0].astype(int).to_numpy(), "what": names[1].to_numpy(),
                          "value": part["value"].to_numpy()})
    out = frame.pivot_table(index=["language", "scaling", "bin"], columns="what",
                            values="value").reset_index()
    out["count"] = out["count"].astype(int)
    out.columns.name = None
    return out[columns].sort_values(["language", "scaling", "bin"]).reset_index(drop=True)
