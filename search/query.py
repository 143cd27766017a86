"""Asking a sweep what won: load, best-k, Pareto front, per-language views.

    >>> from search import load_sweep, best, pareto
    >>> sweep = load_sweep("xstilts-runs/demo")
    >>> best(sweep, k=3)                                   # by the scalar objective
    >>> best(sweep, k=1, where={"config/model_size": "tiny"})
    >>> pareto(sweep)                                      # accuracy up, ECE down
    >>> sweep.languages_wide("accuracy")                   # trial x language

Only finished trials are ranked (not stopped, failed or duplicate ones). Ties
break deterministically: objective (or accuracy) first, then config hash.

A sweep's tables are read when first used. ``best`` and ``pareto`` of a path, or of
a sweep whose trials table was not read yet, read only the columns they rank by
and then the whole rows of the trials they return, so they stay fast on a million
trials and can run while the sweep writes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from search.results import ResultsError, TableFiles, config_from_row, exists, read_table
from spaces.errors import UnknownNameError

Where = Union[Mapping[str, Any], Callable[[pd.DataFrame], Any], None]


class _Table:
    """A table of a sweep, read from storage on first use."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, sweep: SweepResults | None, owner=None) -> Any:
        if sweep is None:
            return self
        if sweep._frames[self.name] is None:
            table = read_table(sweep.path, self.name)
            if table is None and self.name == "trials":
                raise _no_results(sweep.path)
            sweep._frames[self.name] = pd.DataFrame() if table is None else table.to_pandas()
        return sweep._frames[self.name]

    def __set__(self, sweep: SweepResults, frame: pd.DataFrame) -> None:
        sweep._frames[self.name] = frame


class SweepResults:
    """A sweep's results: ``trials``, ``languages`` and ``history`` as DataFrames."""

    trials = _Table()
    languages = _Table()
    history = _Table()

    def __init__(self, path: str, trials: pd.DataFrame | None = None,
                 languages: pd.DataFrame | None = None, history: pd.DataFrame | None = None):
        self.path = path
        self._frames = {"trials": trials, "languages": languages, "history": history}

    def __repr__(self) -> str:
        return f"SweepResults({self.path!r})"

    def config(self, trial_id: str) -> dict[str, Any]:
        """The full trial config of one trial."""
        rows = self.trials[self.trials["trial_id"] == trial_id]
        if rows.empty:
            raise UnknownNameError(f"trial {trial_id!r} is not in sweep {self.path}")
        return config_from_row(rows.iloc[0].to_dict())

    def languages_wide(self, metric: str = "accuracy") -> pd.DataFrame:
        """One row per trial, one column per language, for one metric (of the target, not
        of its out-of-domain sets)."""
        from search.report import target_languages

        langs = target_languages(self)
        part = langs[langs["metric"] == metric]
        return part.pivot_table(index="trial_id", columns="language", values="value")


def _check_path(path: str) -> None:
    if not exists(path):
        raise FileNotFoundError(f"no sweep at {path!r}; give STORAGE/NAME of a sweep started "
                                "with `xstilts run`")


def _no_results(path: str) -> ResultsError:
    return ResultsError(f"sweep {path!r} has no results yet (no trial has finished); "
                        "wait for the first trial or check that the path is STORAGE/NAME")


def load_sweep(path: str) -> SweepResults:
    """A sweep's results (``STORAGE/NAME``, a local path or a URI); tables are read on use."""
    _check_path(path)
    with TableFiles(path, "trials") as files:  # footers only: a newer or torn file fails here
        if not files.files:
            raise _no_results(path)
    return SweepResults(path)


def _filter(df: pd.DataFrame, where: Where) -> pd.DataFrame:
    if where is None:
        return df
    if callable(where):
        return df[where(df)]
    for col, value in where.items():
        if col not in df.columns:
            raise UnknownNameError(f"cannot filter on {col!r}; columns: {', '.join(df.columns)}")
        df = df[df[col] == value]
    return df


def best(sweep: SweepResults | str, k: int = 1, *, metric: str = "objective",
         where: Where = None) -> pd.DataFrame:
    """The ``k`` finished trials with the highest ``metric``; ties by config hash."""
    return _ranked(sweep, [metric], where, lambda v, hashes: _top(v[0], hashes, k))


def pareto(sweep: SweepResults | str, *, maximize: str = "zs_accuracy", minimize: str = "zs_ece",
           where: Where = None) -> pd.DataFrame:
    """Finished trials not dominated in (``maximize`` up, ``minimize`` down).

    Sorted by ``maximize`` descending, then ``minimize`` ascending, then config hash.
    Trials with identical values are all kept (none dominates the other).
    """
    return _ranked(sweep, [maximize, minimize], where,
                   lambda v, hashes: _front(v[0], v[1], hashes))


Rank = Callable[[list[np.ndarray], Any], np.ndarray]


def _ranked(sweep: SweepResults | str, metrics: Sequence[str], where: Where, rank: Rank) -> pd.DataFrame:
    """The rows ``rank`` picks (positions, in order) among the finished trials."""
    if isinstance(sweep, str):
        _check_path(sweep)
        sweep = SweepResults(sweep)
    if sweep._frames["trials"] is None and not _needs_pandas(where):
        with TableFiles(sweep.path, "trials") as files:
            if not files.files:
                raise _no_results(sweep.path)
            names = files.schema().names
            _check_columns(names, metrics, where)
            t = files.read(["config_hash", "status", *metrics, *(where or {})], positions=True)
            mask = pc.equal(t["status"], "finished")
            for col, value in (where or {}).items():
                mask = pc.and_(mask, _equals(t[col], value))
            t = t.filter(mask)
            picked = t.take(pa.array(rank([_numbers(t[m], m) for m in metrics], t["config_hash"])))
            rows = files.take(picked["_file"].to_numpy(), picked["_row"].to_numpy())
        return rows.to_pandas()
    df = sweep.trials
    df = _filter(df[df["status"] == "finished"], where)
    _check_columns(df.columns, metrics, None)
    hashes = pa.array(df["config_hash"].astype(object), type=pa.string(), from_pandas=True)
    picked = rank([_numbers(pa.array(df[m], from_pandas=True), m) for m in metrics], hashes)
    return df.iloc[picked].reset_index(drop=True)


def _needs_pandas(where: Where) -> bool:
    """Filters only pandas can apply: a function of the frame, or a non-scalar value."""
    return callable(where) or any(isinstance(v, (list, tuple, set, dict, np.ndarray))
                                  for v in (where or {}).values())


def _check_columns(names: Sequence[str], metrics: Sequence[str], where: Where) -> None:
    for col in where or {}:
        if col not in names:
            raise UnknownNameError(f"cannot filter on {col!r}; columns: {', '.join(names)}")
    for m in metrics:
        if m not in names:
            raise UnknownNameError(f"no column {m!r} in the trials table")


def _equals(column: pa.ChunkedArray, value: Any) -> pa.ChunkedArray:
    """``column == value`` as pandas has it (no kernel is needed per type pair): pandas
    compares the column's distinct values, and the column is matched against the hits."""
    distinct = pc.unique(column)
    hits = distinct.filter(pa.array(distinct.to_pandas() == value, type=pa.bool_()))
    return pc.is_in(column, value_set=hits.drop_null())


def _numbers(column: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type) or pa.types.is_null(column.type)):
        raise TypeError(f"cannot rank by {name!r}: its values are {column.type}, not numbers")
    return pc.fill_null(pc.cast(column, pa.float64()), np.nan).to_numpy()


def _order(idx: np.ndarray, keys: list[tuple[np.ndarray, str]], hashes) -> np.ndarray:
    """``idx`` sorted by ``keys`` (values, "ascending"/"descending"), then config hash, then
    position: the order a stable pandas sort by the same columns gives."""
    table = pa.table({**{f"k{j}": values[idx] for j, (values, _) in enumerate(keys)},
                      "hash": hashes.take(pa.array(idx)), "i": idx})
    sort = [(f"k{j}", order) for j, (_, order) in enumerate(keys)]
    # nulls (a missing hash) go last, as in pandas
    perm = pc.sort_indices(table, sort_keys=[*sort, ("hash", "ascending"), ("i", "ascending")])
    return idx[perm.to_numpy()]


def _top(values: np.ndarray, hashes, k: int) -> np.ndarray:
    """Positions of the ``k`` largest values (NaN left out); ties by hash, then position."""
    idx = np.flatnonzero(~np.isnan(values))
    if 0 < k < len(idx):  # only values at or above the k-th largest can be among the k
        kth = np.partition(values[idx], len(idx) - k)[len(idx) - k]
        idx = idx[values[idx] >= kth]
    return _order(idx, [(values, "descending")], hashes)[:k]


def _front(hi: np.ndarray, lo: np.ndarray, hashes) -> np.ndarray:
    """Positions of the rows no other row dominates (``hi`` up, ``lo`` down), in order.

    In the order ``hi`` descending, ``lo`` ascending, a row is on the front iff its ``lo``
    is below that of every row before it, or it ties exactly a row on the front."""
    idx = np.flatnonzero(~np.isnan(hi) & ~np.isnan(lo))
    if len(idx) == 0:
        return idx
    h, lo_ = hi[idx], lo[idx]
    # the first row in that order and the row of lowest lo bound the front: nothing with a
    # higher lo than the first, or a lower hi than the lowest-lo row, can be on it
    first_lo = lo_[h == h.max()].min()
    lowest_hi = h[lo_ == lo_.min()].max()
    idx = idx[(lo_ <= first_lo) & (h >= lowest_hi)]
    order = np.lexsort((lo[idx], -hi[idx]))  # stable: ties keep table order
    idx = idx[order]
    h, lo_ = hi[idx], lo[idx]
    before = np.minimum.accumulate(np.concatenate([[np.inf], lo_[:-1]]))
    starts = np.ones(len(idx), bool)  # the first row of each run of identical (hi, lo)
    starts[1:] = (h[1:] != h[:-1]) | (lo_[1:] != lo_[:-1])
    keep = (lo_ < before)[starts][np.cumsum(starts) - 1]  # a run goes as its first row does
    return _order(idx[keep], [(hi, "descending"), (lo, "ascending")], hashes)
