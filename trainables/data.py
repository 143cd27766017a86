"""Loading task data through the registry, and walking it in batches.

Every source goes through ``datasets.load_dataset``: HF ids from the hub,
local JSONL/Parquet files, and the embedded demo suite's files. Tokenizing
per format is ``trainables.encoding``; ``Cursor`` walks an encoded split.

A local mirror of the hub: with ``XSTILTS_DATA_DIR`` set, every ``hf`` and
``files`` task reads ``$XSTILTS_DATA_DIR/<task name>/<file split>.<lang>.jsonl``
(or ``.parquet`` where no ``.jsonl`` is) through ``datasets.load_dataset("json"
/ "parquet", data_files=...)`` instead of its source; the files hold the hub's
schema, and the language filter, column mapping and encoding that follow are
the same. ``<file split>`` is ``TaskSource.mirror_split``: the hub's split name
where it is ``train``, ``validation`` or ``test``, else our split's name in
that vocabulary (train -> ``train``, dev -> ``validation``, test -> ``test``):
MNLI dev (hub ``validation_matched``) and CCG dev are ``validation``, XQuAD,
Tatoeba and TyDiQA test (hub ``validation``) are ``validation`` too. ``<lang>``
is our language code (``de``, not ``German`` nor ``deu``); TyDiQA still goes
through its id-prefix filter. ``tests/fixtures/xtreme`` is such a mirror. The
demo suite ignores the variable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from spaces.tasks import TaskSpec

#: the folder of the local mirror of the hub (see the module docstring)
DATA_DIR_ENV = "XSTILTS_DATA_DIR"


class DataUnavailableError(RuntimeError):
    """A task's data could not be loaded; the message says which and how to fix it."""


def mirror_file(task: TaskSpec, split: str, language: str) -> Path | None:
    """The local-mirror file of a task's split and language; None without a mirror."""
    root = os.environ.get(DATA_DIR_ENV)
    if not root or task.source.kind == "demo":
        return None
    stem = f"{task.source.mirror_split(split)}.{language}"
    folder = Path(root) / task.name
    for suffix in (".jsonl", ".parquet"):
        if (folder / (stem + suffix)).exists():
            return folder / (stem + suffix)
    return folder / (stem + ".jsonl")


def load_rows(task: TaskSpec, split: str, language: str):
    """The ``datasets.Dataset`` of one task, split and language."""
    import datasets

    src = task.source
    name = src.splits.get(split)
    if name is None:
        raise DataUnavailableError(
            f"task {task.name!r} has no {split!r} split; it has: {', '.join(src.splits)}")
    mirror = mirror_file(task, split, language)
    try:
        lang = src.config_language(language) if mirror is None else language
    except KeyError as exc:
        raise DataUnavailableError(f"task {task.name!r}: {exc.args[0]}") from None
    try:
        if mirror is not None:
            rows = _load_file(str(mirror))
        elif src.kind == "hf":
            config = src.config.format(lang=lang) if src.config else None
            rows = datasets.load_dataset(src.path, config, split=name.format(lang=lang))
        else:
            if src.kind == "demo":
                from trainables.embedded import demo_suite_dir

                path = str(demo_suite_dir() / src.path / f"{name}.{language}.jsonl")
            else:
                path = src.path.format(split=name, lang=language)
            rows = _load_file(path)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as exc:
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if mirror is not None:
            raise DataUnavailableError(
                f"could not load task {task.name!r}, split {split!r}, language {language!r} from "
                f"the local mirror ({DATA_DIR_ENV} is set): {mirror}: {why}. Put the split there "
                f"in the hub's schema, or unset {DATA_DIR_ENV} to read {src.path}") from exc
        where = f"{src.path}" + (f" ({src.config.format(lang=lang)})" if src.config else "")
        raise DataUnavailableError(
            f"could not load task {task.name!r}, split {split!r}, language {language!r} from "
            f"{where}: {why}. "
            "If the Hugging Face hub is unreachable, download the dataset where it is reachable "
            "and point HF_DATASETS_CACHE at it (with HF_DATASETS_OFFLINE=1), or use the demo preset."
        ) from exc
    return _select_language(task, rows, language) if src.language_filter else rows


def _load_file(path: str):
    import datasets

    builder = "parquet" if path.endswith(".parquet") else "json"
    return datasets.load_dataset(builder, data_files=path, split="train")


def _select_language(task: TaskSpec, rows, language: str):
    rule = task.source.language_filter
    assert rule is not None
    want = rule.values.get(language)
    if want is None:
        raise DataUnavailableError(f"task {task.name!r} has no language {language!r}; its "
                                   f"languages: {', '.join(rule.values)}")
    sep = rule.separator
    kept = rows.filter(lambda value: str(value).split(sep, 1)[0] == want,
                       input_columns=rule.column)
    if not len(kept):
        raise DataUnavailableError(
            f"task {task.name!r}: no rows of language {language!r} (whose {rule.column!r} "
            f"starts with {want + sep!r}) among {len(rows)} rows")
    return kept


class Cursor:
    """Walks a dataset in seeded, per-epoch permutations, one global batch at a time.

    Every rank holds the same cursor and takes its own slice of the global batch,
    so ranks see disjoint examples and the position is one (epoch, offset) pair.

    With ``lengths`` and ``group`` > 1, each epoch's permutation is cut into groups of
    ``group`` global batches whose examples are sorted by length, and the batches of
    the epoch are shuffled (HF's ``group_by_length``): each example still comes once
    per epoch, in a random batch of others of about its length, so little of a batch
    is padding.
    """

    def __init__(self, name: str, size: int, *, seed: int, global_batch: int,
                 lengths: np.ndarray | None = None, group: int = 0):
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
        self.size, self.seed, self.global_batch = size, seed, global_batch
        self.lengths = lengths if lengths is not None and group > 1 else None
        self.group = group
        self.epoch, self.offset = 0, 0
        self._cached: tuple[int, np.ndarray] | None = None

    def _perm(self) -> np.ndarray:
        if self._cached is not None and self._cached[0] == self.epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, self.key, self.epoch])
        perm = rng.permutation(self.size)
        if self.lengths is not None:
            perm = _grouped_by_length(perm, self.lengths, self.global_batch, self.group, rng)
        self._cached = (self.epoch, perm)
        return perm

    def next(self, rank: int, world: int) -> np.ndarray:
        if self.offset + world > self.size:  # every rank needs at least one example
            self.epoch, self.offset = self.epoch + 1, 0
        take = self._perm()[self.offset:self.offset + self.global_batch]
        self.offset += self.global_batch
        return take[rank::world]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])


def _grouped_by_length(perm: np.ndarray, lengths: np.ndarray, batch: int, group: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``perm`` re-ordered so that each block of ``batch`` holds examples of similar length:
    sorted (longest first) within groups of ``group`` blocks, then the full blocks shuffled.
    A last, partial block stays last, where the cursor's epoch ends."""
    mega = batch * group
    parts = [chunk[np.argsort(-lengths[chunk], kind="stable")]
             for chunk in (perm[i:i + mega] for i in range(0, len(perm), mega))]
    ordered = np.concatenate(parts) if parts else perm
    full = len(ordered) // batch
    blocks = ordered[:full * batch].reshape(full, batch)[rng.permutation(full)]
    return np.concatenate([blocks.ravel(), ordered[full * batch:]])
