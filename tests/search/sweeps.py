"""What the CLI sweep tests share: fast surrogate trials, and a sweep's rows by trial."""

from __future__ import annotations

from search.results import read_table

#: ``xstilts run`` arguments for a sweep of 0.2-s surrogate trials, two at a time
SURROGATE = ["--set", "search.trainable=surrogate", "--set", "search.surrogate_seconds=0.2",
             "--set", "search.concurrency=2"]


def trials_by_id(path: str) -> dict[str, dict]:
    """The sweep's trials table, one row per trial id."""
    return {r["trial_id"]: r for r in read_table(path, "trials").to_pylist()}
