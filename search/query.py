"""Asking a sweep what won: load, best-k, Pareto front, per-language views.

    >>> from search import load_sweep, best, pareto
    >>> sweep = load_sweep("xstilts-runs/demo")
    >>> best(sweep, k=3)                                   # by the scalar objective
    >>> best(sweep, k=1, where={"config/model_size": "tiny"})
    >>> pareto(sweep)                                      # accuracy up, ECE down
    >>> sweep.languages_wide("accuracy")                   # trial x language

Only finished trials are ranked (not stopped, failed or duplicate ones). Ties
break deterministically: objective (or accuracy) first, then config hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from search.results import ResultsError, config_from_row, exists, read_table


@dataclass
class Sweep:
    path: str
    trials: pd.DataFrame
    languages: pd.DataFrame
    history: pd.DataFrame

    def config(self, trial_id: str) -> dict[str, Any]:
        """The full trial config of one trial."""
        rows = self.trials[self.trials["trial_id"] == trial_id]
        if rows.empty:
            raise KeyError(f"trial {trial_id!r} is not in sweep {self.path}")
        return config_from_row(rows.iloc[0].to_dict())

    def languages_wide(self, metric: str = "accuracy") -> pd.DataFrame:
        """One row per trial, one column per language, for one metric."""
        part = self.languages[self.languages["metric"] == metric]
        return part.pivot_table(index="trial_id", columns="language", values="value")


def load_sweep(path: str) -> Sweep:
    """Read a sweep's results (``STORAGE/NAME``, a local path or a URI)."""
    if not exists(path):
        raise FileNotFoundError(f"no sweep at {path!r}; give STORAGE/NAME of a sweep started "
                                "with `xstilts run`")
    trials = read_table(path, "trials")
    if trials is None:
        raise ResultsError(f"sweep {path!r} has no results yet (no trial has finished); "
                           "wait for the first trial or check that the path is STORAGE/NAME")
    empty = pd.DataFrame()
    frames = [t.to_pandas() if t is not None else empty
              for t in (read_table(path, "languages"), read_table(path, "history"))]
    return Sweep(path, trials.to_pandas(), *frames)


def _as_sweep(sweep: Sweep | str) -> Sweep:
    return load_sweep(sweep) if isinstance(sweep, str) else sweep


def _filter(df: pd.DataFrame, where: Mapping[str, Any] | Callable[[pd.DataFrame], Any] | None) -> pd.DataFrame:
    if where is None:
        return df
    if callable(where):
        return df[where(df)]
    for col, value in where.items():
        if col not in df.columns:
            raise KeyError(f"cannot filter on {col!r}; columns: {', '.join(df.columns)}")
        df = df[df[col] == value]
    return df


def best(sweep: Sweep | str, k: int = 1, *, metric: str = "objective",
         where: Mapping[str, Any] | Callable[[pd.DataFrame], Any] | None = None) -> pd.DataFrame:
    """The ``k`` finished trials with the highest ``metric``; ties by config hash."""
    s = _as_sweep(sweep)
    df = _filter(s.trials[s.trials["status"] == "finished"], where)
    if metric not in df.columns:
        raise KeyError(f"no column {metric!r} in the trials table")
    df = df.dropna(subset=[metric])
    return df.sort_values([metric, "config_hash"], ascending=[False, True],
                          kind="mergesort").head(k).reset_index(drop=True)


def pareto(sweep: Sweep | str, *, maximize: str = "zs_accuracy", minimize: str = "zs_ece",
           where: Mapping[str, Any] | Callable[[pd.DataFrame], Any] | None = None) -> pd.DataFrame:
    """Finished trials not dominated in (``maximize`` up, ``minimize`` down).

    Sorted by ``maximize`` descending, then ``minimize`` ascending, then config hash.
    Trials with identical values are all kept (none dominates the other).
    """
    s = _as_sweep(sweep)
    df = _filter(s.trials[s.trials["status"] == "finished"], where).dropna(subset=[maximize, minimize])
    df = df.sort_values([maximize, minimize, "config_hash"], ascending=[False, True, True],
                        kind="mergesort")
    keep, best_min = [], float("inf")
    last: tuple[float, float] | None = None
    for idx, hi, lo in zip(df.index, df[maximize], df[minimize]):
        # sorted by hi desc: a row is dominated iff an earlier row has lower-or-equal lo,
        # unless that row ties it exactly
        if lo < best_min or (last is not None and (hi, lo) == last):
            keep.append(idx)
            last = (hi, lo)
            best_min = min(best_min, lo)
    return df.loc[keep].reset_index(drop=True)
