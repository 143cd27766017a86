"""How a sweep's results tables live on storage: base files, parts, compaction, reads.

Each table (``TABLES``) is a base file ``results/<table>.parquet`` plus parts
``results/parts/<table>-<seq>-<id>.parquet`` holding rows recorded since the
base was last compacted, in the same schema. A trial's end writes only its own
rows, as parts (O(1) per trial, however large the sweep). Parts are compacted
when a table has more than ``MAX_PARTS``, when a writer starts and when the
sweep ends: a finished sweep's base files are complete on their own, for
pandas, polars or DuckDB. While a sweep runs, a table's rows are its base file
plus the parts whose ``seq`` is above the base's ``xstilts.seq`` (the last part
it includes), the newer row winning per key (``KEYS``); ``read_table`` does
that. Every file carries ``xstilts.schema`` in its metadata and is written to a
temporary name and moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SCHEMA_VERSION = 3  # 2: history keyed by budget (phase-2 rungs report too); trials carry it.
# 3: the languages table carries reliability bins (binNN_* metric rows) of scored trials;
# the columns are unchanged, so versions 1-2 read as before (their trials have no bins)
SCHEMA_KEY = b"xstilts.schema"
SEQ_KEY = b"xstilts.seq"
TABLES = ("trials", "languages", "history")
#: a row replaces an older one with the same key (a languages row is also keyed by its task:
#: a target and its out-of-domain sets share languages and metrics)
KEYS = {"trials": ("trial_id",), "languages": ("trial_id", "task", "language", "metric"),
        "history": ("trial_id", "budget")}
MAX_PARTS = 32
#: compaction merges the newest files until each is MERGE_RATIO times the rows of all newer
#: ones (the base is the oldest file): a row is rewritten O(log n) times in a sweep, not
#: O(n / max_parts) as when every compaction rewrites the base
MERGE_RATIO = 4
#: rows per row group of a base: a query reads the groups of the rows it returns, not all
ROW_GROUP_ROWS = 8192
READ_ATTEMPTS = 20


class ResultsError(ValueError):
    """A results file that cannot be read; the message says which and what to do."""


# -- paths and files ---------------------------------------------------------------------
def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URI."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def exists(path: str) -> bool:
    """Whether a file or folder exists at a local path or URI."""
    fs, local = filesystem(path)
    return fs.get_file_info(local).type != pafs.FileType.NotFound


def results_dir(sweep_path: str) -> str:
    return f"{sweep_path.rstrip('/')}/results"


def table_path(sweep_path: str, table: str) -> str:
    return f"{results_dir(sweep_path)}/{table}.parquet"


def parts_dir(sweep_path: str) -> str:
    return f"{results_dir(sweep_path)}/parts"


def train_run_dir(sweep_path: str, trial_id: str) -> str:
    """Where the Train run of a sweep's trial keeps its checkpoints and details."""
    return f"{sweep_path}/train/train-{trial_id}"


_PART = re.compile(r"(?P<table>[a-z]+)-(?P<seq>\d{8,})-[0-9a-f]{8}\.parquet")


def _write_then_move(path: str, write) -> None:
    """``write(fs, tmp)`` a temporary file in ``path``'s folder, then move it over ``path``:
    readers see the old file or the new one, never half of one."""
    _move_into_place(*filesystem(path), write)


def _move_into_place(fs: pafs.FileSystem, final: str, write) -> None:
    fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
    tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
    write(fs, tmp)
    fs.move(tmp, final)


def write_atomic(path: str, data: bytes) -> None:
    """Write a small file (manifest, marker, lock) atomically."""
    def write(fs, tmp: str) -> None:
        with fs.open_output_stream(tmp) as f:
            f.write(data)

    _write_then_move(path, write)


def read_text(path: str) -> str | None:
    """A small file's text, or None where it does not exist."""
    if not exists(path):
        return None
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def _write_parquet(fs: pafs.FileSystem, path: str, table: pa.Table, name: str,
                   seq: int | None) -> None:
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != SEQ_KEY}
    meta.update({SCHEMA_KEY: str(SCHEMA_VERSION).encode(), b"xstilts.table": name.encode()})
    if seq is not None:
        meta[SEQ_KEY] = str(seq).encode()
    table = table.replace_schema_metadata(meta)
    _move_into_place(fs, path, lambda fs, tmp: pq.write_table(
        table, tmp, filesystem=fs, row_group_size=ROW_GROUP_ROWS))


def write_table(table: pa.Table, sweep_path: str, name: str, *, seq: int | None = None) -> None:
    """Write a table's base file atomically, with the schema version in its metadata.

    ``seq``: the last part it includes; readers skip the parts up to it."""
    _write_parquet(*filesystem(table_path(sweep_path, name)), table, name, seq)


def write_part(table: pa.Table, sweep_path: str, name: str, seq: int) -> str:
    """Write new rows of a table atomically as its part ``seq``; the part's path."""
    fs, folder = filesystem(parts_dir(sweep_path))
    path = _part_path(folder, name, seq)
    _write_parquet(fs, path, table, name, seq)
    return path


def _part_path(folder: str, name: str, seq: int) -> str:
    # the random tail keeps a merged part (named by the last seq it holds) apart from that part
    return f"{folder}/{name}-{seq:08d}-{uuid.uuid4().hex[:8]}.parquet"


def list_parts(sweep_path: str, name: str) -> list[tuple[int, str]]:
    """A table's parts on storage, ``(seq, path in the sweep's filesystem)``, oldest first."""
    return _list_parts(*filesystem(parts_dir(sweep_path)), name)


def _list_parts(fs: pafs.FileSystem, folder: str, name: str) -> list[tuple[int, str]]:
    found = []
    for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        m = _PART.fullmatch(info.base_name)
        if m and m["table"] == name:
            found.append((int(m["seq"]), info.path))
    return sorted(found)


class _Part:
    """A part file held in memory, each column set decoded once.

    A part never changes once written (compaction writes new files under new names), so
    a process that reads a table again and again (a surrogate trial looking up its sweep,
    a query polling a running one) keeps the parts it has read: ``_PARTS``."""

    def __init__(self, data: bytes):
        self.file = pq.ParquetFile(pa.BufferReader(data))
        self.schema_arrow = self.file.schema_arrow
        self.metadata = self.file.metadata
        self.num_row_groups = self.file.num_row_groups
        self.nbytes = len(data)
        self._reads: dict[tuple[str, ...] | None, pa.Table] = {}
        self._lock = threading.Lock()  # shared by the process's threads; a ParquetFile is not

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        key = None if columns is None else tuple(columns)
        with self._lock:
            if key not in self._reads:
                self._reads[key] = self.file.read(columns=columns)
            return self._reads[key]

    def read_row_groups(self, groups: list[int]) -> pa.Table:
        with self._lock:
            return self.file.read_row_groups(groups)


#: parts read by this process, oldest first; at most PART_CACHE_BYTES of files (the
#: column sets decoded from them come on top), ``_parts_bytes`` of them now
_PARTS: OrderedDict[str, _Part] = OrderedDict()
PART_CACHE_BYTES = 64 * 2**20
_PARTS_LOCK = threading.Lock()
_parts_bytes = 0


def _remember(path: str, part: _Part) -> None:
    if part.nbytes > PART_CACHE_BYTES // 16:
        return  # a large merged part: read when needed, not held
    global _parts_bytes
    with _PARTS_LOCK:
        if path in _PARTS:
            return
        _PARTS[path] = part
        _parts_bytes += part.nbytes
        while _parts_bytes > PART_CACHE_BYTES:
            _parts_bytes -= _PARTS.popitem(last=False)[1].nbytes


class TableFiles:
    """One table's files at one moment, each opened once: the base and the parts after it.

    The parts are listed before the base is opened, and each must still be there after:
    a part that a compaction deleted in between is in a file newer than those opened, so
    everything is opened again. Parts are read into memory whole; the base is read
    through its one open handle, because by path pyarrow opens a file again for its pages,
    and a move in between pairs the old footer with the new file (a torn read), while an
    open handle outlives the move and the deletion of the file behind it.
    """

    def __init__(self, sweep_path: str, name: str):
        self.sweep_path, self.name = sweep_path, name
        self.fs, self.root = filesystem(results_dir(sweep_path))
        self._handles: list[Any] = []
        for _ in range(READ_ATTEMPTS):
            try:
                opened = self._open()
            except BaseException:
                self.close()
                raise
            if opened:
                return
            self.close()
        raise ResultsError(f"the {name} table of {sweep_path} kept changing while it was read "
                           f"({READ_ATTEMPTS} tries); read it again")

    def _open(self) -> bool:
        listed = _list_parts(self.fs, f"{self.root}/parts", self.name)
        base = self._open_file(f"{self.root}/{self.name}.parquet", whole=False)
        self.has_base = base is not None
        self.base_seq = _seq(base.schema_arrow) if base else 0
        self.files: list[Any] = [base] if base else []  # the base (ParquetFile), then _Parts
        self.paths = [table_path(self.sweep_path, self.name)] if base else []
        self.parts: list[tuple[int, str]] = []
        self.stale = [path for seq, path in listed if seq <= self.base_seq]  # in the base
        for seq, path in listed:
            if seq <= self.base_seq:
                continue
            part = self._open_file(path, whole=True)
            if part is None:  # compacted since it was listed, into a file newer than ours
                return False
            self.files.append(part)
            self.paths.append(path)
            self.parts.append((seq, path))
        return True

    def _open_file(self, path: str, *, whole: bool) -> Any:
        cached = _PARTS.get(path) if whole else None
        if cached is not None:
            return cached
        try:
            handle = self.fs.open_input_file(path)
        except FileNotFoundError:
            return None
        except OSError:
            if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
                return None
            raise
        try:
            if whole:
                with handle:
                    file: Any = _Part(handle.read())
            else:
                self._handles.append(handle)
                file = pq.ParquetFile(handle)
            schema = file.schema_arrow
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(path, exc) from None
        version = int((schema.metadata or {}).get(SCHEMA_KEY, b"0"))
        if version > SCHEMA_VERSION:
            raise ResultsError(
                f"{path} was written with results schema {version}, newer than this xstilts "
                f"reads ({SCHEMA_VERSION}); upgrade xstilts to read it")
        if whole:
            _remember(path, file)
        return file

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles = []

    def __enter__(self) -> TableFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def last_seq(self) -> int:
        return self.parts[-1][0] if self.parts else self.base_seq

    def schema(self) -> pa.Schema:
        """The table's columns: those of every file, types widened where they differ."""
        return pa.unify_schemas([f.schema_arrow for f in self.files], promote_options="permissive")

    def read(self, columns: Sequence[str] | None = None, *, first: int = 0,
             positions: bool = False) -> pa.Table | None:
        """The table from file ``first`` on, one row per key, the newest winning; ``columns``:
        only these (and the keys); ``positions``: with ``_file`` and ``_row`` for ``take``."""
        keys = KEYS.get(self.name, ())
        pieces = []
        for i in range(first, len(self.files)):
            f = self.files[i]
            names = set(f.schema_arrow.names)  # a ParquetFile builds its schema on each call
            want = None if columns is None else [
                c for c in dict.fromkeys([*keys, *columns]) if c in names]
            try:
                t = f.read(columns=want)
            except (pa.ArrowInvalid, OSError) as exc:
                raise _unreadable(self.paths[i], exc) from None
            if positions:
                t = t.append_column("_file", pa.array(np.full(t.num_rows, i, np.int32)))
                t = t.append_column("_row", pa.array(np.arange(t.num_rows, dtype=np.int64)))
            pieces.append(t)
        if not pieces:
            return None
        base = pieces.pop(0) if first == 0 and self.has_base else None
        table = _newest(base, pieces, keys)
        version = max(int((f.schema_arrow.metadata or {}).get(SCHEMA_KEY, b"0"))
                      for f in self.files)
        return table.replace_schema_metadata({
            SCHEMA_KEY: str(version).encode(), b"xstilts.table": self.name.encode(),
            SEQ_KEY: str(self.last_seq).encode()})

    def take(self, files: np.ndarray, rows: np.ndarray) -> pa.Table:
        """Whole rows, by where they lie, in the order given; only their row groups are read."""
        pieces, order = [self.schema().empty_table()], [np.empty(0, np.int64)]
        for i in np.unique(files):
            f, wanted = self.files[i], np.flatnonzero(files == i)
            sizes = np.array([f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)])
            starts = np.concatenate([[0], np.cumsum(sizes)])
            group = np.searchsorted(starts, rows[wanted], side="right") - 1
            groups = np.unique(group)
            begins = np.concatenate([[0], np.cumsum(sizes[groups])[:-1]])  # among those read
            place = rows[wanted] - starts[group] + begins[np.searchsorted(groups, group)]
            try:
                t = f.read_row_groups(groups.tolist())
            except (pa.ArrowInvalid, OSError) as exc:
                raise _unreadable(self.paths[i], exc) from None
            pieces.append(t.take(pa.array(place)))
            order.append(wanted)
        table = pa.concat_tables(pieces, promote_options="permissive")
        back = np.empty(len(files), np.int64)
        back[np.concatenate(order)] = np.arange(len(files))
        return table.take(pa.array(back)).replace_schema_metadata(None)


def _seq(schema: pa.Schema) -> int:
    return int((schema.metadata or {}).get(SEQ_KEY, b"0"))


def _unreadable(path: str, exc: Exception) -> ResultsError:
    return ResultsError(
        f"{path} is not a readable Parquet file ({exc}); move it aside (the sweep's Tune "
        "state under the same folder is untouched) and resume")


def _key(table: pa.Table, keys: Sequence[str]) -> pa.Array:
    cols = [pc.cast(table[k], pa.string()).combine_chunks() if k in table.column_names
            else pa.nulls(table.num_rows, pa.string()) for k in keys]
    if len(cols) == 1:
        return cols[0]
    return pc.binary_join_element_wise(*cols, "\x1f", null_handling="replace",
                                       null_replacement="")


def _newest(base: pa.Table | None, parts: list[pa.Table], keys: Sequence[str]) -> pa.Table:
    """Base and parts (oldest first) as one table, one row per key, the newest winning.

    A base holds one row per key (compaction wrote it so): only the parts' own keys need
    a hash pass, and the base one ``is_in`` against them."""
    if not parts:
        assert base is not None
        return base
    newer = pa.concat_tables(parts, promote_options="permissive")
    if keys and newer.num_rows > 1:
        last = pa.table({"k": _key(newer, keys), "i": np.arange(newer.num_rows)}).group_by(
            "k", use_threads=False).aggregate([("i", "max")])["i_max"]
        if len(last) < newer.num_rows:
            newer = newer.take(np.sort(last.to_numpy()))
    if base is None:
        return newer
    if keys and newer.num_rows:
        replaced = pc.is_in(_key(base, keys), value_set=_key(newer, keys))
        if pc.any(replaced).as_py():  # filtering copies every column: only when needed
            base = base.filter(pc.invert(replaced))
    return pa.concat_tables([base, newer], promote_options="permissive")


def read_table(sweep_path: str, name: str, *, columns: Sequence[str] | None = None
               ) -> pa.Table | None:
    """A results table (its base and parts, one row per key), or None if none is written.

    ``columns``: read only these (and the table's keys)."""
    with TableFiles(sweep_path, name) as files:
        return files.read(columns)


def _table(rows: list[dict[str, Any]], core: Iterable[tuple[str, pa.DataType]]) -> pa.Table:
    core = list(core)
    names = [n for n, _ in core]
    extra = sorted({k for r in rows for k in r} - set(names))
    arrays = [pa.array([r.get(n) for r in rows], type=t) for n, t in core]
    arrays += [pa.array([r.get(n) for r in rows]) for n in extra]
    return pa.Table.from_arrays(arrays, names=names + extra)


# -- the one writer's storage: parts and their compaction ------------------------------------
class PartStore:
    """Appends rows to a sweep's tables as parts and compacts them (one writer per sweep).

    Sequence numbers go on from the largest on storage (a part's name, a base's
    ``xstilts.seq``), so a writer that starts after a kill -9 writes after all it finds;
    the temporary files of the writer before it are removed."""

    def __init__(self, sweep_path: str, *, max_parts: int = MAX_PARTS):
        self.sweep_path, self.max_parts = sweep_path, max_parts
        self.fs, self.root = filesystem(results_dir(sweep_path))
        for folder in (self.root, f"{self.root}/parts"):
            for info in self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
                if ".parquet.tmp-" in info.base_name:
                    _delete(self.fs, info.path)
        self.counts, last = {}, 0
        for name in TABLES:
            parts = _list_parts(self.fs, f"{self.root}/parts", name)
            self.counts[name] = len(parts)
            last = max([last, self._base_seq(name), *(seq for seq, _ in parts)])
        self.next_seq = last + 1

    def _base_seq(self, name: str) -> int:
        try:
            with self.fs.open_input_file(f"{self.root}/{name}.parquet") as f:
                return _seq(pq.read_schema(f))
        except FileNotFoundError:
            return 0
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(table_path(self.sweep_path, name), exc) from None

    def append(self, tables: Mapping[str, pa.Table]) -> None:
        """One part per table that has rows, in the order given (details before the trials
        that promise them); a table with more than ``max_parts`` parts is compacted."""
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            path = _part_path(f"{self.root}/parts", name, self.next_seq)
            _write_parquet(self.fs, path, table, name, self.next_seq)
            self.next_seq += 1
            self.counts[name] += 1
            if self.counts[name] > self.max_parts:
                self.compact(name)

    def compact(self, name: str, *, fold: bool = False) -> None:
        """Merge a table's newest files until each holds ``MERGE_RATIO`` times the rows of
        all newer ones (the base is the oldest file); ``fold``: every part into the base.

        The merged file is moved into place before the files it replaces are deleted: a
        reader sees both (one row per key kept) or the merged one alone."""
        with TableFiles(self.sweep_path, name) as files:
            rows = [f.metadata.num_rows for f in files.files]
            sizes = rows if files.has_base else [0, *rows]  # [base, parts oldest first]
            start = 0 if fold else next((i for i in range(len(sizes) - 1)
                                         if sizes[i] < MERGE_RATIO * sum(sizes[i + 1:])), 0)
            merged = files.parts[max(start - 1, 0):]
            if start == 0 and merged:
                _write_parquet(self.fs, f"{self.root}/{name}.parquet", files.read(), name,
                               files.last_seq)
            elif len(merged) > 1:
                table = files.read(first=len(files.files) - len(merged))
                path = _part_path(f"{self.root}/parts", name, files.last_seq)
                _write_parquet(self.fs, path, table, name, files.last_seq)
            else:
                merged = []
            for path in [*files.stale, *(path for _, path in merged)]:
                _delete(self.fs, path)
            left = len(files.parts) - len(merged)
            self.counts[name] = left + 1 if start > 0 and merged else left

    def fold_all(self) -> None:
        """Fold every table's parts into its base (the details before the trials)."""
        for name in ("history", "languages", "trials"):
            if self.counts[name]:
                self.compact(name, fold=True)


def _delete(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass
