"""Tokenize once per node: encoded splits in memory-mapped Arrow files, shared by trials.

Each (task, split, language, source, tokenizer, max_length, encoding options,
``ENCODING_VERSION``) is encoded once into a folder under ``$XSTILTS_CACHE/tokens``
(node-local by default: ``~/.cache/xstilts/tokens``): one Arrow IPC file per table
(``trainables.encoding.build_tables``: token ids as one flat int32 buffer with
offsets, int32 labels, evaluation columns only for evaluation sets) and ``meta.json``.
Every trial and every rank of a trial memory-maps the files: the pages are the OS's
page cache, shared between the processes of a node, and a warm trial reads no source
data at all (the key is computed from the source's identity, not its rows).

Concurrency: the first process to want a key builds it under a file lock into a
temporary folder, renamed into place when complete; others wait on the lock, then
map the same bytes. ``meta.json`` records each file's size and row count: an entry
that does not match (a truncated file, a half-deleted folder) is rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from spaces.tasks import TaskSpec
from trainables.embedded_default import cache_root
from trainables.encoded import EncodedSplit, from_tables

log = logging.getLogger("xstilts.cache")

#: bump when the tables' layout or the tokenization rules change: old entries are ignored
ENCODING_VERSION = 1
META_FILE = "meta.json"


def tokens_root() -> Path:
    """``$XSTILTS_CACHE/tokens`` (``~/.cache/xstilts/tokens``)."""
    return cache_root() / "tokens"


@dataclass(frozen=True)
class SplitKey:
    """What an encoded split depends on; its digest names the cache entry."""

    task: str
    split: str
    language: str
    max_length: int
    limit: int = 0
    max_query_length: int = 64
    #: tag names given by the caller; None: the registry's, or the split's own (CCG train)
    label_names: tuple[str, ...] | None = None
    evaluation: bool = True

    def digest(self, task: TaskSpec, tokenizer) -> str:
        parts = {**self.__dict__, "label_names": list(self.label_names or []) or None,
                 "task_spec": repr(task), "source": source_identity(task, self.split,
                                                                    self.language),
                 "tokenizer": tokenizer_fingerprint(tokenizer), "version": ENCODING_VERSION}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()
                              ).hexdigest()[:20]


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of everything that decides the tokenizer's ids: its serialized model,
    normalizer, pre-tokenizer, post-processor and special tokens (fast tokenizers), or
    ``datasets``' hash of the object (others). Computed once per tokenizer object."""
    cached = getattr(tokenizer, "_xstilts_fingerprint", None)
    if cached:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        body = backend.to_str() + repr(sorted(tokenizer.special_tokens_map.items()))
        digest = hashlib.sha256(body.encode()).hexdigest()[:20]
    else:
        from datasets.fingerprint import Hasher

        digest = Hasher.hash(tokenizer)[:20]
    try:
        tokenizer._xstilts_fingerprint = digest
    except AttributeError:
        pass
    return digest


def source_identity(task: TaskSpec, split: str, language: str) -> list[Any]:
    """Where a split's rows come from, cheaply: a file's path, size and mtime (local
    mirror, local or storage-URI files), the suite version (the demo suite is built
    deterministically), or the hub id, config and split (a hub revision does not change
    under a prepared, offline cache)."""
    from trainables.data import files_template, mirror_file

    src = task.source
    mirror = mirror_file(task, split, language) if split in src.splits else None
    if mirror is not None:
        return ["mirror", *_file_identity(str(mirror))]
    if src.kind == "demo":
        from trainables import demo_suite

        return ["demo", demo_suite.SUITE_VERSION, src.path, split, language]
    name = src.splits.get(split, split)
    if src.kind == "files":
        return ["files", *_file_identity(files_template(task).format(split=name, lang=language))]
    return ["hf", src.path, src.config, name, language]


def _file_identity(path: str) -> list[Any]:
    from trainables.data import is_uri

    if is_uri(path):
        import pyarrow.fs as pafs

        fs, inner = pafs.FileSystem.from_uri(path)
        info = fs.get_file_info(inner)
        mtime = info.mtime_ns if info.type == pafs.FileType.File else None
        return [path, info.size, mtime]
    try:
        st = os.stat(path)
    except OSError:
        return [os.path.abspath(path), None, None]  # loading will say what is missing
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def encoded_split(task: TaskSpec, split: str, language: str, tokenizer, *, max_length: int,
                  limit: int = 0, max_query_length: int = 64,
                  label_names: Sequence[str] | None = None,
                  evaluation: bool = True) -> EncodedSplit:
    """The encoded split, from the cache when it holds it, else built, stored and mapped.

    ``label_names``: tag names for a tagging split (None: the registry's; a tagging task
    without them, CCG, takes its training split's vocabulary, stored with the entry)."""
    if label_names is not None and tuple(label_names) == task.labels:
        label_names = None  # the registry's names: one entry, however they were asked for
    key = SplitKey(task.name, split, language, max_length, limit, max_query_length,
                   tuple(label_names) if label_names is not None else None, evaluation)
    path = tokens_root() / task.name / f"{split}.{language}.{key.digest(task, tokenizer)}"
    entry = _open(path)
    if entry is None:
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            entry = _open(path)  # another process may have built it while we waited
            if entry is None:
                _build(path, task, split, language, tokenizer, key)
                entry = _open(path)
                if entry is None:
                    raise RuntimeError(f"token cache entry {path} is unreadable right after "
                                       "it was written; check the disk under XSTILTS_CACHE")
    return from_tables(task, *entry)


def _open(path: Path) -> tuple[dict[str, pa.Table], dict[str, Any]] | None:
    """The entry's tables (memory-mapped) and metadata; None when absent. An entry that
    does not match its metadata is moved away (and rebuilt by the caller)."""
    meta_file = path / META_FILE
    if not meta_file.exists():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        tables = {}
        for name, want in meta["tables"].items():
            file = path / f"{name}.arrow"
            if file.stat().st_size != want["bytes"]:
                raise ValueError(f"{file} has {file.stat().st_size} bytes, {want['bytes']} "
                                 "were written")
            table = pa.ipc.open_file(pa.memory_map(str(file), "r")).read_all()
            if table.num_rows != want["rows"]:
                raise ValueError(f"{file} has {table.num_rows} rows, {want['rows']} were written")
            table.validate()
            tables[name] = table
        return tables, meta
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        log.warning("token cache entry %s is damaged (%s); rebuilding it", path, exc)
        _discard(path)
        return None


def _discard(path: Path) -> None:
    """Move a damaged entry out of the way (processes that mapped it keep their pages)."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.replace(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _build(path: Path, task: TaskSpec, split: str, language: str, tokenizer,
           key: SplitKey) -> None:
    from trainables.data import load_rows
    from trainables.encoding import build_tables, tag_vocabulary

    t0 = time.perf_counter()
    rows = load_rows(task, split, language)
    names = key.label_names
    if task.format == "tagging" and names is None:
        names = tag_vocabulary(task, rows)  # the registry's, or this split's own (CCG)
    tables, meta = build_tables(task, rows, tokenizer, max_length=key.max_length,
                                limit=key.limit, max_query_length=key.max_query_length,
                                label_names=names, evaluation=key.evaluation)
    del rows
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        meta["tables"] = {}
        for name, table in tables.items():
            file = tmp / f"{name}.arrow"
            with pa.OSFile(str(file), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table, max_chunksize=max(table.num_rows, 1))  # one record batch
            meta["tables"][name] = {"rows": table.num_rows, "bytes": file.stat().st_size}
        meta["key"] = {**key.__dict__, "label_names": list(names) if names else None}
        meta["built_seconds"] = round(time.perf_counter() - t0, 3)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        for file in tmp.iterdir():  # on disk before the rename makes the entry visible
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if path.exists():
            _discard(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("encoded %s/%s/%s (%d rows) in %.1f s -> %s", task.name, split, language,
             meta["rows"], meta["built_seconds"], path)


def entry_size_bytes(root: Path | None = None) -> int:
    """Bytes of the token cache on disk (the benchmark and ``xstilts prepare`` report it)."""
    root = root or tokens_root()
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.exists() else 0
