"""``xstilts report``: a sweep's answers on one page.

``report_numbers(sweep)`` gathers, per section, the numbers ``search.report`` computes
from the sweep's tables; ``write_report(sweep, out)`` draws them into one self-contained
HTML page (figures inline as PNG, no script, nothing fetched) and writes each figure also
as a PNG beside it. The page draws only what ``report_numbers`` returns, so
``xstilts report --json`` prints the numbers the page shows. A section whose numbers
cannot exist yet (no finished trial, only errors, a retrieval target without
probabilities, tables without their manifest) says what is missing and why instead.

Figures are drawn by matplotlib (the ``report`` extra); the parameter importances by
``optuna.visualization.matplotlib``, on the study ``search.report.study_from_sweep``
rebuilds. The search progress is drawn here rather than by Optuna's
``plot_optimization_history``: it needs a trial-hours axis beside the trial-number one,
and Optuna's deep-copies every trial of the study (7 s of a 10,000-trial report).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from search.query import SweepResults, best, pareto
from search.report import (BETTER, _finished, _plan, _sweep, arm_differences, arm_trials,
                           cost, domain_shift,
                           importances_of, language_groups, language_view, progress, reliability,
                           similarity_correlations, similarity_transfer, statuses,
                           study_from_sweep, target_languages, task_effects)
from search.results import ResultsError, write_atomic

#: the page's sections, in order: id -> title
SECTIONS = {
    "progress": "Search progress",
    "calibration": "Accuracy vs calibration",
    "tasks": "What each intermediate task does",
    "arms": "Designed comparison: multi-task vs single-task arms",
    "similarity": "Does task similarity predict transfer?",
    "languages": "Languages",
    "reliability": "Reliability of the best trial",
    "cost": "Cost",
}
#: how the languages section groups the target's languages (``spaces.languages``)
LANGUAGE_GROUPS = ("resource", "morphology", "family")
#: trials per heatmap: the best ``TOP_K`` by objective (then the best single-task trial of
#: each task not among them)
TOP_K = 10


# -- the numbers ------------------------------------------------------------------------------
def report_numbers(sweep: SweepResults | str) -> dict[str, dict[str, Any]]:
    """Per section id: its numbers (plain JSON values) and ``missing``, the sentences saying
    what the section cannot show yet and why (empty when it shows everything)."""
    sweep = _sweep(sweep)
    plan = _plan(sweep)
    study, study_missing = None, None
    if plan is None:
        study_missing = (f"{sweep.path} has no sweep manifest (xstilts-sweep.json), so its "
                         "search space, and with it the Optuna study, is unknown")
    else:
        study = study_from_sweep(sweep)
    done = _finished(sweep)
    target = _target(sweep)
    retrieval = len(done) > 0 and done["zs_ece"].isna().all()
    no_ece = (f"the trials of target {target!r} have no ECE: a retrieval sweep from before "
              "retrieval calibration was defined (trainables.metrics)") if retrieval else None
    none_done = _none_finished(sweep)
    tasks = _tasks(sweep, done, none_done, study, study_missing, retrieval)
    return {
        "sweep": {"path": sweep.path, "target": target,
                  "mode": plan.sweep.mode if plan is not None else None,
                  "trials": int(len(sweep.trials)), "finished": int(len(done)),
                  **_headline(sweep, done, tasks["effects"])},
        "progress": _progress(sweep, plan),
        "calibration": _calibration(sweep, done, none_done, no_ece, _is_retrieval(target)),
        "tasks": tasks,
        "arms": _arms(sweep, plan, none_done),
        "similarity": _similarity(sweep, none_done),
        "languages": _languages(sweep, done, none_done, retrieval),
        "reliability": _reliability(sweep, done, none_done, no_ece),
        "cost": _cost(sweep),
        "_study": study,  # for the figures; not part of the numbers
    }


def _target(sweep: SweepResults) -> str | None:
    t = sweep.trials
    if len(t) and "config/target" in t:
        return str(t["config/target"].iloc[0])
    return None


def _headline(sweep: SweepResults, done: pd.DataFrame, effects: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's first lines: the best trial, and the tasks whose inclusion moved zero-shot
    accuracy and ECE most clearly (largest effect whose interval excludes 0)."""
    out: dict[str, Any] = {"best": None, "helps_accuracy": None, "costs_calibration": None}
    if len(done):
        row = best(sweep, k=1).iloc[0]
        out["best"] = {"trial_id": row["trial_id"], "objective": _num(row["objective"]),
                       "zs_accuracy": _num(row["zs_accuracy"]), "zs_ece": _num(row["zs_ece"]),
                       "zs_ece_ts": _num(row.get("zs_ece_ts")),
                       "model_size": row["config/model_size"],
                       "tasks": list(row["config/intermediate_tasks"])}
    for key, metric, sign in (("helps_accuracy", "zs_accuracy", 1), ("costs_calibration",
                                                                     "zs_ece", 1)):
        clear = [e for e in effects if e["metric"] == metric and e["low"] is not None
                 and sign * e["low"] > 0]
        if clear:
            top = max(clear, key=lambda e: sign * e["effect"])
            out[key] = {k: top[k] for k in ("task", "effect", "low", "high")}
    return out


def _num(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _none_finished(sweep: SweepResults) -> str | None:
    counts = statuses(sweep)["counts"]
    if counts.get("finished"):
        return None
    if not counts:
        return "no trial has been recorded yet"
    said = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if set(counts) == {"error"}:
        return f"every trial failed ({said}): the search progress section says where from"
    return f"no trial has finished yet ({said})"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> null, numpy -> plain


def _progress(sweep: SweepResults, plan) -> dict[str, Any]:
    rows = progress(sweep)
    out: dict[str, Any] = {"trials": _records(rows), **statuses(sweep), "missing": []}
    if not len(rows):
        out["missing"].append("no trial has been recorded yet")
    elif rows["best"].isna().all():
        out["missing"].append("no best score yet: no trial has finished")
    if plan is not None and plan.sweep.mode == "multi":
        out["missing"].append("a multi-objective sweep has no single score to improve: the "
                              "best-so-far line follows the objective column (accuracy minus "
                              "λ·ECE) for reference; the sweep's answer is the front in the "
                              "next section")
    return out


def _is_retrieval(target: str | None) -> bool:
    from spaces.tasks import get_task

    try:
        return target is not None and get_task(target).format == "retrieval"
    except KeyError:  # a task this xstilts does not know
        return False


def _calibration(sweep: SweepResults, done: pd.DataFrame, none_done: str | None,
                 no_ece: str | None, retrieval: bool) -> dict[str, Any]:
    if none_done or no_ece:
        return {"trials": [], "domain_shift": [], "missing": [none_done or no_ece]}
    rows = pd.DataFrame({
        "trial_id": done["trial_id"], "zs_accuracy": done["zs_accuracy"],
        "zs_ece": done["zs_ece"], "zs_ece_ts": done.get("zs_ece_ts", np.nan),
        "model_size": done["config/model_size"],
        "n_tasks": [len(ts) for ts in done["config/intermediate_tasks"]]})
    rows["front"] = rows["trial_id"].isin(pareto(sweep)["trial_id"])
    missing = []
    if rows["zs_ece_ts"].notna().any():
        rows["front_ts"] = rows["trial_id"].isin(pareto(sweep, minimize="zs_ece_ts")["trial_id"])
    else:
        rows["front_ts"] = False
        missing.append("a retrieval target's probabilities are defined with their fitted "
                       "temperature (Tatoeba) or Platt scaling (BUCC): one ECE, no separate "
                       "value after scaling" if retrieval else
                       "no ECE after temperature scaling was recorded (a sweep from before it "
                       "was)")
    return {"trials": _records(rows.sort_values("zs_accuracy", ascending=False)),
            "domain_shift": _records(domain_shift(sweep)), "missing": missing}


def _tasks(sweep: SweepResults, done: pd.DataFrame, none_done: str | None, study, study_missing,
           retrieval: bool) -> dict[str, Any]:
    metrics = ["objective", "zs_accuracy"] if retrieval else None
    effects = task_effects(sweep, metrics=metrics)
    missing = [none_done] if none_done else []
    if not none_done and effects["effect"].isna().all():
        missing.append("no task is in some finished trials and not in others, so no effect "
                       "can be measured yet")
    shares = None
    if study is None:
        missing.append(f"no parameter importances: {study_missing}")
    elif len(done) < 2:
        missing.append("no parameter importances: they need at least two finished trials")
    else:
        with warnings.catch_warnings():  # PED-ANOVA warns of thin regimes on small sweeps
            warnings.simplefilter("ignore", UserWarning)
            shares = importances_of(sweep, study)
    return {"effects": _records(effects), "importances": shares, "missing": missing}


def _arms(sweep: SweepResults, plan, none_done: str | None) -> dict[str, Any]:
    if plan is None or not plan.sweep.arms:
        return {"trials": [], "differences": [], "missing": [
            "not a designed sweep: a preset's search.arms runs fixed task subsets, each over "
            "the same seeds (e.g. xstilts run q-calibration-multitask), and this section "
            "compares them"]}
    if none_done:
        return {"trials": [], "differences": [], "missing": [none_done]}
    diffs = arm_differences(sweep)
    missing = [] if len(diffs) else [
        "no multi-task arm and single-task arm have both finished at a common seed yet"]
    return {"trials": _records(arm_trials(sweep)), "differences": _records(diffs),
            "missing": missing}


def _similarity(sweep: SweepResults, none_done: str | None) -> dict[str, Any]:
    from search.similarity import FILE, read_similarity

    if read_similarity(sweep.path) is None:
        return {"rows": [], "correlations": [], "missing": [
            f"no similarity estimates ({FILE}): compute them with `xstilts similarity PRESET "
            "--name NAME` or a preset with search.similarity: true (e.g. xstilts run "
            "q-similarity), and run single-task trials to measure transfer against"]}
    if none_done:
        return {"rows": [], "correlations": [], "missing": [none_done]}
    rows = similarity_transfer(sweep)
    corr = similarity_correlations(sweep)
    missing = [] if len(corr) else [
        f"{len(rows)} intermediate task(s) have both an estimate and a finished single-task "
        "trial; a rank correlation needs at least 3"]
    return {"rows": _records(rows), "correlations": _records(corr), "missing": missing}


def _languages(sweep: SweepResults, done: pd.DataFrame, none_done: str | None,
               retrieval: bool) -> dict[str, Any]:
    if none_done:
        return {"accuracy": None, "ece": None, "missing": [none_done]}
    out: dict[str, Any] = {"missing": []}
    for metric in ("accuracy", "ece"):
        try:
            view = language_view(sweep, metric, k=TOP_K)
        except ResultsError as exc:
            view, why = pd.DataFrame(), str(exc)
        else:
            why = "the finished trials were not scored per language"
        if len(view):
            out[metric] = {"languages": list(view.index), "trials": list(view.columns),
                           "values": json.loads(view.to_json(orient="values"))}
        else:
            out[metric] = None
            if metric == "ece" and retrieval:
                why = "this retrieval sweep's trials have no ECE per language"
            out["missing"].append(f"no {metric} heatmap: {why}")
    out["groups"] = {}
    langs = target_languages(sweep)
    known = set(langs["metric"].unique()) if len(langs) else set()
    metrics = [m for m in ("accuracy", "ece") if m in known]
    for by in LANGUAGE_GROUPS:
        try:
            out["groups"][by] = _records(language_groups(sweep, by, metrics=metrics))
        except ResultsError as exc:  # e.g. the demo's pseudo-languages have no family
            out["groups"][by] = []
            out["missing"].append(f"no grouping by {by}: {exc}")
    labels = _labels(sweep, done)
    out["labels"] = {tid: labels.get(tid, tid) for m in ("accuracy", "ece") if out.get(m)
                     for tid in out[m]["trials"]}
    return out


def _labels(sweep: SweepResults, done: pd.DataFrame) -> dict[str, str]:
    """A short name per finished trial: its rank by objective and its tasks."""
    ranked = best(sweep, k=len(done)) if len(done) else done
    return {tid: f"#{i + 1} {'+'.join(ts) or '(none)'}"
            for i, (tid, ts) in enumerate(zip(ranked["trial_id"],
                                              ranked["config/intermediate_tasks"]))}


def _reliability(sweep: SweepResults, done: pd.DataFrame, none_done: str | None,
                 no_ece: str | None) -> dict[str, Any]:
    if none_done or no_ece:
        return {"trial_id": None, "bins": [], "missing": [none_done or no_ece]}
    tid = best(sweep, k=1)["trial_id"].iloc[0]
    bins = reliability(sweep, tid)
    missing = [] if len(bins) else [f"the best trial {tid} was scored without reliability bins "
                                    "(a sweep from before they were recorded)"]
    return {"trial_id": tid, "bins": _records(bins), "missing": missing}


def _cost(sweep: SweepResults) -> dict[str, Any]:
    rows = cost(sweep)
    return {"rows": _records(rows), "seconds": float(rows["seconds"].sum()) if len(rows) else 0.0,
            "missing": [] if len(rows) else ["no trial has been recorded yet"]}


# -- the figures ------------------------------------------------------------------------------
@dataclass
class Figure:
    name: str  # file stem: progress, calibration, ...
    caption: str
    png: bytes = field(repr=False)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ResultsError("xstilts report draws its figures with matplotlib, which is not "
                           "installed; install the report extra: pip install 'xstilts[report]' "
                           "(or use --json for the numbers alone)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figures(numbers: dict[str, Any]) -> dict[str, list[Figure]]:
    """The figures of each section, drawn from ``report_numbers``' output."""
    plt = _pyplot()
    study = numbers.get("_study")
    out: dict[str, list[Figure]] = {s: [] for s in SECTIONS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's ExperimentalWarning for its plots
        if numbers["progress"]["trials"]:
            out["progress"].append(_fig_progress(plt, numbers["progress"]))
        if numbers["calibration"]["trials"]:
            out["calibration"].append(_fig_calibration(plt, numbers["calibration"]))
        if any(r["effect"] is not None for r in numbers["tasks"]["effects"]):
            out["tasks"].append(_fig_effects(plt, numbers["tasks"]["effects"]))
        if numbers["arms"]["differences"]:
            out["arms"].append(_fig_arms(plt, numbers["arms"]["differences"]))
        if numbers["similarity"]["correlations"]:
            out["similarity"].append(_fig_similarity(plt, numbers["similarity"]))
        if numbers["tasks"]["importances"] and study is not None:
            out["tasks"].append(_fig_importances(plt, study, numbers["progress"]["trials"]))
        if numbers["languages"].get("accuracy"):
            out["languages"].append(_fig_heatmaps(plt, numbers["languages"]))
        if numbers["reliability"]["bins"]:
            out["reliability"].append(_fig_reliability(plt, numbers["reliability"]))
        if numbers["cost"]["rows"]:
            out["cost"].append(_fig_cost(plt, numbers["cost"]["rows"]))
    return out


def _fig_progress(plt, p: dict[str, Any]) -> Figure:
    rows = pd.DataFrame(p["trials"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.0), gridspec_kw={"width_ratios": [3, 3, 2]})
    done = rows[rows["status"] == "finished"]
    for ax, x, label in ((axes[0], "n", "trials recorded"),
                         (axes[1], "trial_seconds", "trial-hours spent")):
        scale = 3600.0 if x == "trial_seconds" else 1.0
        ax.scatter(done[x] / scale, done["objective"], s=10, alpha=0.5, color="tab:blue",
                   label="finished trial")
        ax.step(rows[x] / scale, rows["best"], where="post", color="tab:red", label="best so far")
        ax.set_xlabel(label)
        ax.set_ylabel("objective")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    counts = p["counts"]
    names = [s for s in ("finished", "stopped", "duplicate", "error") if s in counts] + \
        sorted(set(counts) - {"finished", "stopped", "duplicate", "error"})
    colors = {"finished": "tab:green", "stopped": "tab:orange", "duplicate": "tab:gray",
              "error": "tab:red"}
    axes[2].barh(names, [counts[s] for s in names], color=[colors.get(s, "tab:purple")
                                                          for s in names])
    axes[2].set_xlabel("trials")
    axes[2].invert_yaxis()
    fig.suptitle("best objective so far, against trials and against trial-hours; statuses")
    return Figure("progress", "Best objective so far against trials recorded and against "
                  "trial-hours spent (dots: finished trials); trials by status.", _png(fig))


def _fig_calibration(plt, c: dict[str, Any]) -> Figure:
    rows = pd.DataFrame(c["trials"])
    sizes = sorted(rows["model_size"].unique())
    by = "model_size" if len(sizes) > 1 else "n_tasks"
    groups = sizes if by == "model_size" else sorted(rows["n_tasks"].unique())
    panels = [("zs_ece", "front", "raw")]
    if rows["zs_ece_ts"].notna().any():
        panels.append(("zs_ece_ts", "front_ts", "after temperature scaling"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False,
                             sharey=True)
    cmap = plt.get_cmap("tab10")
    for ax, (ece, front, title) in zip(axes[0], panels):
        for i, g in enumerate(groups):
            part = rows[rows[by] == g]
            ax.scatter(part[ece], part["zs_accuracy"], s=28, alpha=0.75, color=cmap(i % 10),
                       label=f"{g}" if by == "model_size" else f"{g} task{'' if g == 1 else 's'}")
        f = rows[rows[front]].sort_values(ece)
        ax.plot(f[ece], f["zs_accuracy"], color="black", lw=1.2, marker="o", mfc="none", ms=9,
                label="Pareto front")
        ax.set_xlabel(f"zero-shot ECE, {title} (lower is better)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("zero-shot accuracy")
    axes[0][-1].legend(fontsize=8, title=by.replace("_", " "), loc="best")
    return Figure("calibration", "Every finished trial's zero-shot accuracy against its "
                  f"zero-shot ECE, coloured by {by.replace('_', ' ')}; circled and joined: "
                  "the Pareto front (higher accuracy, lower ECE).", _png(fig))


def _forest(plt, rows: pd.DataFrame, *, label: str, value: str, width: float):
    """One panel per metric: each ``label`` row's ``value`` with its [low, high] interval,
    green where it is better for that metric (higher, or lower for an ECE), red where
    worse; a line at 0."""
    metrics = list(dict.fromkeys(rows["metric"]))
    labels = list(dict.fromkeys(rows[label]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics),
                                                        0.45 * len(labels) + 1.7),
                             sharey=True, squeeze=False)
    y = np.arange(len(labels))
    for ax, metric in zip(axes[0], metrics):
        part = rows[rows["metric"] == metric].set_index(label).reindex(labels)
        v = part[value].to_numpy(dtype=float)
        lo, hi = part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float)
        higher = BETTER.get(metric, "min" if "ece" in metric else "max") == "max"
        ax.errorbar(v, y, xerr=[v - lo, hi - v], fmt="none", ecolor="gray", capsize=3)
        ax.scatter(v, y, c=np.where((v > 0) == higher, "tab:green", "tab:red"), zorder=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{metric} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0][0].set_yticks(y, labels)
    axes[0][0].invert_yaxis()
    return fig


def _fig_effects(plt, effects: list[dict[str, Any]]) -> Figure:
    fig = _forest(plt, pd.DataFrame(effects), label="task", value="effect", width=4.2)
    return Figure("effects", "Mean effect of including each task (finished trials with it minus "
                  "without it) with its bootstrap interval; green: better, red: worse.",
                  _png(fig))


def _fig_arms(plt, differences: list[dict[str, Any]]) -> Figure:
    rows = pd.DataFrame(differences)
    multi, size = rows["multi_arm"].iloc[0], rows["model_size"].iloc[0]
    rows = rows[(rows["multi_arm"] == multi) & (rows["model_size"] == size)]
    fig = _forest(plt, rows, label="single_arm", value="difference", width=3.4)
    return Figure("arms", f"The multi-task arm ({multi}, {size}) minus each single-task arm, "
                  "paired by seed, with bootstrap intervals over seeds; green: the multi-task "
                  "arm is better (higher accuracy, lower ECE).", _png(fig))


def _fig_similarity(plt, n: dict[str, Any]) -> Figure:
    rows = pd.DataFrame(n["rows"])
    corr = {r["metric"]: r for r in n["correlations"]}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric, label in zip(axes, ("zs_accuracy", "zs_ece"),
                                 ("zero-shot accuracy", "zero-shot ECE")):
        ax.scatter(rows["estimate"], rows[metric], color="tab:blue")
        for _, r in rows.iterrows():
            ax.annotate(r["intermediate"], (r["estimate"], r[metric]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        c = corr.get(metric, {})
        ax.set_title(f"Spearman {_fmt(c.get('spearman'))}, Kendall {_fmt(c.get('kendall'))}",
                     fontsize=9)
        ax.set_xlabel(f"similarity estimate ({', '.join(sorted(set(rows['method'])))})")
        ax.set_ylabel(f"{label}, single-task trials")
    fig.tight_layout()
    return Figure("similarity", "Each intermediate task's similarity estimate against its "
                  "measured single-task transfer (mean over its trials), with the rank "
                  "correlations over the tasks.", _png(fig))


def _fig_importances(plt, study, progress_rows: list[dict[str, Any]]) -> Figure:
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    objective = {r["trial_id"]: r["objective"] for r in progress_rows}  # as importances_of
    with plt.rc_context():  # optuna's plots switch pyplot to ggplot; keep that to theirs
        ax = plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                    target=lambda t: -objective[t.user_attrs["trial_id"]],
                                    target_name="objective")
    ax.figure.set_size_inches(8, 0.3 * len(ax.get_yticks()) + 1.8)
    return Figure("importances", "Optuna's parameter importances (PED-ANOVA) for the objective "
                  "on the study rebuilt from the sweep.", _png(ax.figure))


def _fig_heatmaps(plt, view: dict[str, Any]) -> Figure:
    maps = [(m, view[m]) for m in ("accuracy", "ece") if view.get(m)]
    langs = maps[0][1]["languages"]
    cols = maps[0][1]["trials"]
    fig, axes = plt.subplots(1, len(maps), squeeze=False,
                             figsize=(max(6.0, 0.55 * len(cols) + 3) * len(maps),
                                      0.32 * len(langs) + 2.6))
    for ax, (metric, m) in zip(axes[0], maps):
        values = np.array(m["values"], dtype=float)
        im = ax.imshow(values, aspect="auto", cmap="viridis" if metric == "accuracy" else "magma_r")
        ax.set_yticks(range(len(m["languages"])), m["languages"])
        ax.set_xticks(range(len(m["trials"])), [view["labels"].get(t, t)[:28] for t in m["trials"]],
                      rotation=60, ha="right", fontsize=7)
        if values.size <= 400:
            for (i, j), v in np.ndenumerate(values):
                if v == v:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if (metric == "accuracy") == (v < np.nanmean(values))
                            else "black")
        ax.set_title(f"{metric} by language (rows: best zero-shot accuracy first)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.04)
    return Figure("languages", f"Accuracy and ECE per language for the {TOP_K} best trials "
                  "by objective, then the best single-task trial of each task.", _png(fig))


def _fig_reliability(plt, r: dict[str, Any]) -> Figure:
    bins = pd.DataFrame(r["bins"])
    langs = list(dict.fromkeys(bins["language"]))
    ncol = min(5, len(langs))
    nrow = math.ceil(len(langs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.6 * nrow), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.ravel()[len(langs):]:
        ax.axis("off")
    for ax, lang in zip(axes.ravel(), langs):
        ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--")
        for scaling, color in (("raw", "tab:blue"), ("ts", "tab:orange")):
            part = bins[(bins["language"] == lang) & (bins["scaling"] == scaling)]
            if len(part):
                ax.plot(part["confidence"], part["accuracy"], marker="o", ms=3, color=color,
                        label="raw" if scaling == "raw" else "temperature-scaled")
        ax.set_title(lang, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.supxlabel("mean confidence in bin")
    fig.supylabel("accuracy in bin")
    return Figure("reliability", f"Reliability diagrams of the best trial ({r['trial_id']}) per "
                  "language: accuracy against mean confidence in each non-empty bin; the "
                  "diagonal is perfect calibration.", _png(fig))


def _fig_cost(plt, rows: list[dict[str, Any]]) -> Figure:
    frame = pd.DataFrame(rows).pivot_table(index="model_size", columns="status", values="seconds",
                                           aggfunc="sum", fill_value=0.0) / 3600.0
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(frame) + 1.8))
    left = np.zeros(len(frame))
    colors = {"finished": "tab:green", "stopped": "tab:orange", "duplicate": "tab:gray",
              "error": "tab:red"}
    for status in frame.columns:
        ax.barh(frame.index, frame[status], left=left, label=status,
                color=colors.get(status, "tab:purple"))
        left += frame[status].to_numpy()
    ax.set_xlabel("trial-hours")
    ax.legend(fontsize=8)
    return Figure("cost", "Trial-hours spent per model size, by how the trials ended.", _png(fig))


# -- the page ---------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1200px;
padding:0 1.2em 3em;color:#222}
header{border-bottom:2px solid #444;margin-bottom:1em}
nav a{margin-right:1em}ul.headline{font-size:1.05em;line-height:1.5}
section{margin:2em 0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}
p.missing{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em .8em}
table{border-collapse:collapse;font-size:.85em;margin:.8em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}
"""


def _table(rows: list[dict[str, Any]], columns: list[str], *, limit: int = 20) -> str:
    if not rows:
        return ""
    head = "".join(f"<th class='l'>{html.escape(c)}</th>" if i == 0 else
                   f"<th>{html.escape(c)}</th>" for i, c in enumerate(columns))
    body = []
    for r in rows[:limit]:
        cells = []
        for i, c in enumerate(columns):
            v = r.get(c)
            text = ("–" if v is None or (isinstance(v, float) and v != v) else
                    f"{v:+.4f}" if c in ("effect", "difference", "low", "high") else
                    f"{v:.4f}" if isinstance(v, float) else
                    "+".join(v) if isinstance(v, list) else str(v))
            cells.append(f"<td{' class=l' if i == 0 else ''}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>… {len(rows) - limit} more rows in <code>--json</code></p>" \
        if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _section_tables(sid: str, n: dict[str, Any]) -> str:
    if sid == "progress":
        errors = _table(n["errors"], ["cause", "trials", "example"])
        counts = _table([n["counts"]], list(n["counts"])) if n["counts"] else ""
        return counts + (f"<h3>Where errors came from</h3>{errors}" if errors else "")
    if sid == "calibration":
        front = [r for r in n["trials"] if r["front"]]
        shift = n.get("domain_shift") or []
        return ("<h3>The Pareto front (raw ECE)</h3>" +
                _table(front, ["trial_id", "zs_accuracy", "zs_ece", "zs_ece_ts", "model_size",
                               "n_tasks"]) if front else "") + (
            "<h3>In domain vs out of domain: zero-shot means over finished trials, and the "
            "shift from the target's own evaluation set</h3>" +
            _table(shift, ["set", "model_size", "trials", "accuracy", "accuracy_shift", "ece",
                           "ece_shift", "ece_ts", "ece_ts_shift"]) if shift else "")
    if sid == "tasks":
        shares = n["importances"] or {}
        return ("<h3>Effect of including each task</h3>" +
                _table(n["effects"], ["task", "metric", "effect", "low", "high", "n_with",
                                      "n_without"], limit=200) +
                ("<h3>Parameter importances (PED-ANOVA, objective)</h3>" +
                 _table([{"parameter": k, "importance": v} for k, v in shares.items()],
                        ["parameter", "importance"], limit=100) if shares else ""))
    if sid == "arms":
        return ("<h3>Multi-task minus single-task, paired by seed</h3>" +
                _table(n["differences"], ["model_size", "multi_arm", "single_arm", "metric", "n",
                                          "difference", "low", "high"], limit=200) +
                "<h3>The arms' trials</h3>" +
                _table(n["trials"], list(n["trials"][0]), limit=200)) if n["trials"] else ""
    if sid == "similarity":
        return ("<h3>Rank correlation of the estimate with measured transfer, bootstrap "
                "intervals over the tasks</h3>" +
                _table(n["correlations"], ["metric", "n", "spearman", "spearman_low",
                                           "spearman_high", "kendall", "kendall_low",
                                           "kendall_high"]) +
                "<h3>Estimate and measured single-task transfer, per task</h3>" +
                _table(n["rows"], list(n["rows"][0]), limit=200)) if n["rows"] else ""
    if sid == "languages":
        out = []
        for by, rows in (n.get("groups") or {}).items():
            if rows:
                cols = [c for c in ("model_size", by, "languages", "trials", "accuracy",
                                    "accuracy_gap", "ece", "ece_gap") if c in rows[0]]
                out.append(f"<h3>By {html.escape(by)}: mean over finished trials, and the gap "
                           f"to the training language</h3>" + _table(rows, cols, limit=100))
        return "".join(out)
    if sid == "cost":
        return _table(n["rows"], ["status", "model_size", "trials", "seconds", "mean_seconds"])
    return ""


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _headline_html(s: dict[str, Any]) -> str:
    items = []  # (label, text)
    b = s.get("best")
    if b:
        ts = "" if b["zs_ece_ts"] is None else f" ({b['zs_ece_ts']:.3f} after temperature scaling)"
        ece = "" if b["zs_ece"] is None else f", zero-shot ECE {b['zs_ece']:.3f}{ts}"
        items.append((f"Best trial {b['trial_id']}",
                      f"objective {_fmt(b['objective'])}, zero-shot accuracy "
                      f"{_fmt(b['zs_accuracy'])}{ece}; {b['model_size']}, tasks "
                      f"{'+'.join(b['tasks'])}"))
    for key, label in (("helps_accuracy", "Clearest gain in zero-shot accuracy"),
                       ("costs_calibration", "Clearest cost in calibration (ECE up)")):
        e = s.get(key)
        if e:
            items.append((label, f"including {e['task']}, {e['effect']:+.4f} "
                                 f"[{e['low']:+.4f}, {e['high']:+.4f}]"))
    return ("<ul class='headline'>" + "".join(
        f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>" for label, text in items)
        + "</ul>") if items else ""


def render_html(numbers: dict[str, Any], figs: dict[str, list[Figure]]) -> str:
    """The page: every section with its figures inline (base64 PNG), tables and what is
    missing."""
    s = numbers["sweep"]
    title = f"xstilts report: {os.path.basename(s['path'].rstrip('/'))}"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<header><h1>{html.escape(title)}</h1><p>{html.escape(s['path'])} · target "
             f"<b>{html.escape(str(s['target']))}</b> · mode {html.escape(str(s['mode']))} · "
             f"{s['trials']} trials recorded, {s['finished']} finished · built "
             f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p><nav>" +
             "".join(f"<a href='#{sid}'>{html.escape(t)}</a>" for sid, t in SECTIONS.items()) +
             f"</nav>{_headline_html(s)}</header>"]
    for sid, heading in SECTIONS.items():
        n = numbers[sid]
        parts.append(f"<section id='{sid}'><h2>{html.escape(heading)}</h2>")
        parts.extend(f"<p class='missing'>{html.escape(m)}</p>" for m in n["missing"])
        for f in figs.get(sid, []):
            data = base64.b64encode(f.png).decode()
            parts.append(f"<figure data-figure='{f.name}'><img alt='{html.escape(f.caption)}' "
                         f"src='data:image/png;base64,{data}'><figcaption>"
                         f"{html.escape(f.caption)}</figcaption></figure>")
        parts.append(_section_tables(sid, n))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def json_numbers(numbers: dict[str, Any]) -> str:
    """``report_numbers``' output as JSON (what ``xstilts report --json`` prints)."""
    return json.dumps({k: v for k, v in numbers.items() if not k.startswith("_")}, indent=2,
                      allow_nan=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        v = value.item()
        return None if isinstance(v, float) and v != v else v
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_report(sweep: SweepResults | str, out: str | None = None) -> str:
    """Write the report of ``sweep`` into the folder ``out`` (default: ``report/`` in the
    sweep's folder when it is local, else ``./report-NAME``): ``report.html`` and
    ``figures/NAME.png``. Returns the page's path. The folder's files are replaced whole,
    each written beside its place first and then renamed, so an interrupted build leaves
    the previous report readable."""
    sweep = _sweep(sweep)
    out = out or default_out(sweep.path)
    numbers = report_numbers(sweep)
    figs = figures(numbers)
    for f in (f for fs in figs.values() for f in fs):
        write_atomic(os.path.join(out, "figures", f"{f.name}.png"), f.png)
    page = render_html(numbers, figs)
    path = os.path.join(out, "report.html")
    write_atomic(path, page.encode())
    return path


def default_out(sweep_path: str) -> str:
    if "://" in sweep_path and not sweep_path.startswith("file://"):
        return os.path.abspath(f"report-{sweep_path.rstrip('/').rsplit('/', 1)[-1]}")
    return os.path.join(sweep_path.removeprefix("file://"), "report")
