"""Loading task data through the registry, and walking it in batches.

Hub ids, local JSONL/Parquet files and the embedded demo suite's files go
through ``datasets.load_dataset``. A ``files`` task whose path is a storage URI
(``s3://bucket/ccg/{split}.{lang}.jsonl``: anything ``pyarrow.fs.FileSystem.
from_uri`` opens) is read through pyarrow on the node that needs it (``read_uri``).
Tokenizing per format is ``trainables.encoding``; ``Cursor`` walks an encoded split.

Failures are of two kinds (``trainables.retry``). Data that is not there (a split,
config or language the source lacks, a missing file, a dataset the hub does not
have, offline mode without it in the cache) raises ``DataUnavailableError`` at
once: the trial fails for good. A load that fails for a reason that passes (a
dropped connection, a timeout, HTTP 429 or 5xx) is retried in-process
(``LOAD_ATTEMPTS``, exponential backoff) and then raises ``FetchError``: Tune
retries the trial (``search.max_failures``).

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
through its id-prefix filter. ``task@lang`` reads the task's own folder
(``xnli@de``: ``xnli/train.de.jsonl``). ``tests/fixtures/xtreme`` is such a mirror. The
demo suite ignores the variable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from spaces.tasks import TaskSpec
from trainables import chaos
from trainables.retry import DEFAULT_FIX, is_offline, message, retry_transient

#: the folder of the local mirror of the hub (see the module docstring)
DATA_DIR_ENV = "XSTILTS_DATA_DIR"
#: calls of one load before a transient failure becomes a ``FetchError``, and the wait
#: before the second (doubled after each failure, with jitter)
LOAD_ATTEMPTS = 3
LOAD_BACKOFF_S = 1.0


#: ``XSTILTS_FILES_<TASK>`` (the task's name upper-cased, ``-`` as ``_``) replaces a
#: ``files`` task's path template, e.g. ``XSTILTS_FILES_CCG=s3://bucket/ccgbank/{split}.{lang}.jsonl``
FILES_ENV_PREFIX = "XSTILTS_FILES_"


def files_env(task: TaskSpec) -> str:
    """The variable that replaces ``task``'s path template (``XSTILTS_FILES_CCG``); one per
    registered task (``task@lang`` reads its task's files)."""
    return FILES_ENV_PREFIX + task.base_name.upper().replace("-", "_")


def files_template(task: TaskSpec) -> str:
    """A ``files`` task's path template (``{split}``, ``{lang}``): ``$XSTILTS_FILES_<TASK>``
    where set (on every node: cluster.yaml exports it), else the registry's."""
    return os.environ.get(files_env(task)) or task.source.path


class DataUnavailableError(RuntimeError):
    """A task's data could not be loaded; the message says which and how to fix it."""


def mirror_file(task: TaskSpec, split: str, language: str) -> Path | None:
    """The local-mirror file of a task's split and language; None without a mirror."""
    root = os.environ.get(DATA_DIR_ENV)
    if not root or task.source.kind == "demo":
        return None
    stem = f"{task.source.mirror_split(split)}.{language}"
    folder = Path(root) / task.base_name
    for suffix in (".jsonl", ".parquet"):
        if (folder / (stem + suffix)).exists():
            return folder / (stem + suffix)
    return folder / (stem + ".jsonl")


def is_uri(path: str) -> bool:
    """Whether a ``files`` task's path is a storage URI (``s3://…``) rather than a local path."""
    return "://" in path


def load_rows(task: TaskSpec, split: str, language: str):
    """The ``datasets.Dataset`` of one task, split and language.

    Raises:
        DataUnavailableError: the data is not there (see the module docstring);
            permanent, the message names the source and the fix.
        FetchError: the hub or the storage failed transiently on each of
            ``LOAD_ATTEMPTS`` attempts; the trial is retried.
    """
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
    where, load = _source(task, name, lang, language, mirror)
    what = f"task {task.name!r}, split {split!r}, language {language!r} from {where}"

    def attempt():
        chaos.load_fault(task.name)  # off unless XSTILTS_FAULTS asks for it
        return load()

    try:
        rows = retry_transient(attempt, what=what, fix=_fetch_fix(task, where, mirror),
                               attempts=LOAD_ATTEMPTS, backoff_s=LOAD_BACKOFF_S)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        # FileNotFoundError, ConnectionError (offline), HfHubHTTPError are OSErrors;
        # a missing config or split, unparsable JSON (pyarrow.ArrowInvalid) ValueErrors
        raise DataUnavailableError(message(f"could not load {what}", exc,
                                           _unavailable_fix(task, where, mirror, exc))) from exc
    return _select_language(task, rows, language) if src.language_filter else rows


def read_uri(uri: str):
    """A JSON Lines file (Parquet for a ``.parquet`` name; ``.gz`` and other compression
    suffixes are detected) at a pyarrow filesystem URI, as a ``datasets.Dataset``.

    Read whole into memory through ``pyarrow.fs`` and handed to ``datasets`` as an
    Arrow table: the filesystem, endpoint and credentials are the ones Ray's storage
    uses (the environment, the instance role), no fsspec package per cloud is needed,
    and no node-local copy has to be kept fresh. JSON and Parquet are data only:
    nothing read is executed.
    """
    import datasets
    import pyarrow.fs as pafs
    import pyarrow.json as paj
    import pyarrow.parquet as pq

    fs, path = pafs.FileSystem.from_uri(uri)
    if path.endswith(".parquet"):
        table = pq.read_table(path, filesystem=fs)  # its datasets features, if it has them
    else:
        with fs.open_input_stream(path) as f:
            table = paj.read_json(f)
    return datasets.Dataset(table)


def _source(task: TaskSpec, name: str, lang: str, language: str,
            mirror: Path | None) -> tuple[str, Callable[[], Any]]:
    """Where a split is read from (for messages), and the call that reads it."""
    import datasets

    src = task.source
    if mirror is not None:
        return (f"the local mirror ({DATA_DIR_ENV} is set): {mirror}",
                lambda: _load_file(str(mirror)))
    if src.kind == "hf":
        config = src.config.format(lang=lang) if src.config else None
        return (src.path + (f" ({config})" if config else ""),
                lambda: datasets.load_dataset(src.path, config, split=name.format(lang=lang)))
    if src.kind == "demo":
        from trainables.embedded_default import demo_suite_dir

        path = str(demo_suite_dir() / src.path / f"{name}.{language}.jsonl")
    else:
        path = files_template(task).format(split=name, lang=language)
    return path, (lambda: read_uri(path)) if is_uri(path) else (lambda: _load_file(path))


def _fetch_fix(task: TaskSpec, where: str, mirror: Path | None) -> str:
    """What to do when a load keeps failing transiently (short: see ``MESSAGE_LIMIT``)."""
    if task.source.kind == "hf" and mirror is None:
        return DEFAULT_FIX
    if is_uri(where):
        return "If it persists, check that every node reaches the storage (endpoint, credentials)"
    return "If it persists, check the filesystem that holds it"


def _unavailable_fix(task: TaskSpec, where: str, mirror: Path | None,
                     exc: BaseException) -> str:
    """What to do about data that is not there, by source (short: see ``MESSAGE_LIMIT``)."""
    if mirror is not None:
        return f"Put the split there in the hub's schema, or unset {DATA_DIR_ENV}"
    if is_offline(exc):
        return ("HF_HUB_OFFLINE is set and it is not in the cache: fill one where the hub is "
                "reachable (`xstilts prepare`) and point HF_HOME at it")
    if task.source.kind == "hf":
        return ("Check the dataset id, config and split; without the hub, fill a cache "
                "(`xstilts prepare`) and set HF_HUB_OFFLINE=1")
    if task.source.kind == "demo":
        return "The demo suite is built on first use: delete its folder to rebuild it"
    if is_uri(where):
        return ("Put the file there (JSON Lines, or Parquet named .parquet) or correct the "
                "task's path")
    if not os.path.isabs(where):
        return (f"The path is relative to the trial's own folder ({os.getcwd()}): use an "
                f"absolute path every node mounts, a URI (s3://...) or {DATA_DIR_ENV}")
    return "Put the files there on every node (a shared disk) or use a URI (s3://...)"


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
