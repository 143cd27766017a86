"""Tokenizing a loaded split, per format, into Arrow tables the heads train and score on.

``build_tables`` tokenizes a split chunk by chunk (``CHUNK_ROWS`` rows at a time, so
a 400k-row split never lives as Python lists) into Arrow tables: token ids as
``list<int32>`` (one flat buffer and offsets), labels as int32, and only for
evaluation sets the columns scoring needs besides. ``encode`` builds them in memory;
``trainables.token_cache`` writes them once per node and memory-maps them. Either way
``trainables.encoded.from_tables`` turns them into the split classes, so a split
reads the same bytes with and without the cache.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from spaces.tasks import ColumnSpec, TaskSpec
from trainables.data import DataUnavailableError
from trainables.encoded import (IGNORE_INDEX, Encoded, EncodedPairs, EncodedSpans,
                                EncodedSplit, EncodedTags, from_tables)

__all__ = ["IGNORE_INDEX", "UNK_TAG", "Encoded", "EncodedPairs", "EncodedSpans", "EncodedSplit",
           "EncodedTags", "build_tables", "encode", "tag_vocabulary"]

#: the tag that stands for tags outside a vocabulary built by ``tag_vocabulary``
UNK_TAG = "<unk>"
#: rows tokenized at a time: the tokenizer's Python output for this many rows is what a
#: build holds besides the compact Arrow columns
CHUNK_ROWS = 16384
_IDS = pa.list_(pa.int32())


# -- columns ---------------------------------------------------------------------------------
def _names(spec: ColumnSpec) -> tuple[str, ...]:
    return () if spec is None else spec if isinstance(spec, tuple) else (spec,)


def _column(rows, name: str) -> list:
    """A column's values; ``"parent.child"`` reads a nested field of each row."""
    if name in rows.column_names:
        return list(rows[name])
    head, *path = name.split(".")
    values = list(rows[head])
    for key in path:
        values = [v[key] for v in values]
    return values


def _values(rows, spec: ColumnSpec) -> list:
    """One value per row; several columns are joined with a space (Cosmos QA context + question)."""
    if isinstance(spec, tuple):
        return [" ".join(parts) for parts in zip(*(_column(rows, c) for c in spec))]
    assert spec is not None
    return _column(rows, spec)


def _lists(rows, spec: ColumnSpec) -> list[list]:
    """One list per row: a list column, or one item per named column (Cosmos QA answer0..3)."""
    if isinstance(spec, tuple):
        return [list(parts) for parts in zip(*(_column(rows, c) for c in spec))]
    assert spec is not None
    return _column(rows, spec)


def _check_columns(task: TaskSpec, rows) -> None:
    wanted = [n for spec in task.columns.values() for n in _names(spec)]
    wanted += [task.choice_label_column] if task.choice_label_column else []
    missing = [c for c in wanted
               if c not in rows.column_names and c.split(".")[0] not in rows.column_names]
    if missing:
        raise DataUnavailableError(
            f"task {task.name!r}: columns {missing} not found in the data (it has "
            f"{rows.column_names}); fix the task's column mapping or the files")


def _label_ids(task: TaskSpec, values: Sequence, names: Sequence[str],
               row_names: Sequence[Sequence[str]] | None = None) -> np.ndarray:
    """Label indices from a label column, as the task's ``label_encoding`` says."""
    if task.label_encoding == "index":
        return np.asarray(values, dtype=np.int64)
    if row_names is not None:
        ids = [list(r).index(v) if v in r else -1 for v, r in zip(values, row_names)]
    else:
        lookup = {n: i for i, n in enumerate(names)}
        ids = [lookup.get(v, lookup.get(UNK_TAG, -1)) for v in values]
    unknown = sorted({repr(v) for v, i in zip(values, ids) if i < 0})
    if unknown:
        among = f"the row's {task.choice_label_column}" if row_names is not None else list(names)
        raise DataUnavailableError(
            f"task {task.name!r}: labels {', '.join(unknown[:5])} are not among {among}; drop "
            "unlabelled rows (test splits store '' or -1) or fix the label column")
    return np.asarray(ids, dtype=np.int64)


# -- the split as tables -------------------------------------------------------------------------
Tables = dict[str, pa.Table]


def encode(task: TaskSpec, rows, tokenizer, *, max_length: int, limit: int = 0,
           stride: int | None = None, max_query_length: int = 64,
           label_names: Sequence[str] | None = None, evaluation: bool = True) -> EncodedSplit:
    """Tokenize a loaded split in memory (``limit`` > 0 keeps the first rows); see
    ``build_tables`` for the options. The token cache stores the same tables."""
    tables, meta = build_tables(task, rows, tokenizer, max_length=max_length, limit=limit,
                                stride=stride, max_query_length=max_query_length,
                                label_names=label_names, evaluation=evaluation)
    return from_tables(task, tables, meta)


def build_tables(task: TaskSpec, rows, tokenizer, *, max_length: int, limit: int = 0,
                 stride: int | None = None, max_query_length: int = 64,
                 label_names: Sequence[str] | None = None, evaluation: bool = True
                 ) -> tuple[Tables, dict[str, Any]]:
    """The Arrow tables and metadata of a loaded split.

    Span QA: ``stride`` tokens overlap between the windows of a long context
    (default ``max_length // 3``, XTREME's 128 of 384), questions keep at most
    ``max_query_length`` tokens. Tagging: ``label_names`` overrides the task's tag
    names (CCG's come from its training file: ``tag_vocabulary``). ``evaluation=False``
    (training sets) leaves out what only scoring reads: span QA's character offsets,
    contexts and answers, tagging's per-word gold tags.
    """
    if limit and len(rows) > limit:
        rows = rows.select(range(limit))
    _check_columns(task, rows)
    meta: dict[str, Any] = {"pad_id": int(tokenizer.pad_token_id), "format": task.format,
                            "rows": len(rows)}
    if task.format == "retrieval":
        return _encode_pairs(task, rows, tokenizer, max_length=max_length), meta
    if task.format == "span_qa":
        stride = max_length // 3 if stride is None else stride
        _check_stride(task, tokenizer, max_length, stride, max_query_length)
        build = lambda part, at: _encode_spans(  # noqa: E731
            task, part, at, tokenizer, max_length=max_length, stride=stride,
            max_query_length=max_query_length, evaluation=evaluation)
    elif task.format == "tagging":
        names = tuple(label_names) if label_names is not None else task.labels
        meta["label_names"] = list(names)
        build = lambda part, at: _encode_tags(  # noqa: E731
            task, part, tokenizer, max_length=max_length, names=names, evaluation=evaluation)
    else:
        if task.format == "multiple_choice":
            meta["choices"] = task.num_labels
        build = lambda part, at: _encode_classes(task, part, tokenizer,  # noqa: E731
                                                 max_length=max_length)
    parts: dict[str, list[pa.Table]] = {}
    for start in range(0, max(len(rows), 1), CHUNK_ROWS):
        part = rows.select(range(start, min(start + CHUNK_ROWS, len(rows)))) \
            if len(rows) > CHUNK_ROWS else rows
        for name, table in build(part, start).items():
            parts.setdefault(name, []).append(table)
    tables = {name: pa.concat_tables(ts).combine_chunks() for name, ts in parts.items()}
    return tables, meta


# -- classification and multiple choice ------------------------------------------------------
def _encode_classes(task: TaskSpec, rows, tokenizer, *, max_length: int) -> Tables:
    col = task.columns
    kw = dict(truncation=True, max_length=max_length)
    row_names = None
    if task.format == "multiple_choice":
        contexts, choices = _values(rows, col["context"]), _lists(rows, col["choices"])
        uneven = [i for i, ch in enumerate(choices) if len(ch) != task.num_labels]
        if uneven:
            raise DataUnavailableError(
                f"task {task.name!r}: rows {uneven[:5]} do not have {task.num_labels} choices "
                f"(they have {[len(choices[i]) for i in uneven[:5]]}); fix the files or the "
                "task's labels")
        # one tokenizer call for all (context, choice) pairs, regrouped per example
        flat = tokenizer([c for c, ch in zip(contexts, choices) for _ in ch],
                         [x for ch in choices for x in ch], **kw)["input_ids"]
        seqs = pa.array(flat, type=_IDS)
        offsets = pa.array(np.arange(0, len(flat) + 1, task.num_labels, dtype=np.int32))
        ids = pa.ListArray.from_arrays(offsets, seqs)
        if task.choice_label_column:
            row_names = _column(rows, task.choice_label_column)
    else:
        second = _values(rows, col["text_b"]) if col.get("text_b") else None
        ids = pa.array(tokenizer(_values(rows, col["text_a"]), second, **kw)["input_ids"],
                       type=_IDS)
    labels = _label_ids(task, _values(rows, col["label"]), task.labels, row_names)
    bad = labels[(labels < 0) | (labels >= task.num_labels)]
    if len(bad):
        raise DataUnavailableError(
            f"task {task.name!r}: labels {sorted(set(bad.tolist()))[:5]} are outside "
            f"0..{task.num_labels - 1}; drop unlabelled rows or fix the label column")
    return {"rows": pa.table({"ids": ids, "label": pa.array(labels, type=pa.int32())})}


# -- span QA ---------------------------------------------------------------------------------
def _cap_questions(questions: list[str], tokenizer, cap: int) -> list[str]:
    """Questions cut to at most ``cap`` tokens (XTREME's max_query_length), at a token end."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for q, offsets in zip(questions, enc["offset_mapping"]):
        n = cap
        while len(offsets) > cap and n > 0:  # a cut can re-tokenize longer: cut earlier
            cut = q[:offsets[n - 1][1]]
            if len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= cap:
                q = cut
                break
            n -= 1
        out.append(q)
    return out


def _check_stride(task: TaskSpec, tokenizer, max_length: int, stride: int,
                  max_query_length: int) -> None:
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - max_query_length
    if stride >= room:
        # the tokenizer would panic: every window needs more context tokens than the stride
        raise ValueError(
            f"task {task.name!r}: stride={stride} leaves no context to a window of "
            f"max_length={max_length} with questions of up to {max_query_length} tokens; "
            f"use a stride below {room}, a larger max_length or a smaller max_query_length")


def _encode_spans(task: TaskSpec, rows, first_row: int, tokenizer, *, max_length: int,
                  stride: int, max_query_length: int, evaluation: bool) -> Tables:
    """Features of ``rows`` (rows ``first_row``... of the split: the example numbers)."""
    col = task.columns
    questions = _cap_questions([q.lstrip() for q in _values(rows, col["question"])], tokenizer,
                               max_query_length)
    contexts = _values(rows, col["context"])
    answers = _column(rows, col["answers"])
    ids_col = col.get("id")
    example_ids = [str(x) for x in _values(rows, ids_col)] if ids_col else \
        [str(first_row + i) for i in range(len(rows))]
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    sample = enc["overflow_to_sample_mapping"]
    starts, ends, offset_start, offset_end = [], [], [], []
    for i, offs in enumerate(enc["offset_mapping"]):
        seq = enc.sequence_ids(i)
        cls = enc["input_ids"][i].index(tokenizer.cls_token_id)
        if evaluation:  # each context token's character span; -1 for the rest
            offset_start.append([o[0] if seq[k] == 1 else -1 for k, o in enumerate(offs)])
            offset_end.append([o[1] if seq[k] == 1 else -1 for k, o in enumerate(offs)])
        gold = answers[sample[i]]
        start, end = cls, cls
        if len(gold["answer_start"]):
            first_char = gold["answer_start"][0]
            last_char = first_char + len(gold["text"][0])
            lo = seq.index(1)
            hi = len(seq) - 1 - seq[::-1].index(1)
            if offs[lo][0] <= first_char and offs[hi][1] >= last_char:
                # the last token starting at or before the answer, the first ending at or
                # after it; unlike run_qa's loop, the first search stops at the context's end
                # (run_qa walks into </s> when the answer starts at the window's last token)
                while lo < len(offs) and seq[lo] == 1 and offs[lo][0] <= first_char:
                    lo += 1
                while offs[hi][1] >= last_char:
                    hi -= 1
                start, end = lo - 1, hi + 1
        starts.append(start)
        ends.append(end)
    features = {"ids": pa.array(enc["input_ids"], type=_IDS),
                "start": pa.array(starts, type=pa.int32()), "end": pa.array(ends, type=pa.int32()),
                "example": pa.array(np.asarray(sample, dtype=np.int32) + first_row)}
    if not evaluation:
        return {"rows": pa.table(features)}
    features.update(offset_start=pa.array(offset_start, type=_IDS),
                    offset_end=pa.array(offset_end, type=_IDS))
    examples = {"id": pa.array(example_ids, type=pa.string()),
                "context": pa.array(contexts, type=pa.string()),
                "answers": pa.array([list(a["text"]) for a in answers], type=pa.list_(pa.string()))}
    return {"rows": pa.table(features), "examples": pa.table(examples)}


# -- tagging ---------------------------------------------------------------------------------
def tag_vocabulary(task: TaskSpec, rows, *, min_count: int = 1) -> tuple[str, ...]:
    """Tag names of a tagging task: the registry's, or for tasks that store tag strings
    without a fixed set (CCG) ``UNK_TAG`` and then the tags seen at least ``min_count``
    times in ``rows`` (its training split), most frequent first."""
    if task.labels:
        return task.labels
    counts = Counter(t for tags in _column(rows, str(task.columns["tags"])) for t in tags)
    kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
    return (UNK_TAG, *kept)


def _encode_tags(task: TaskSpec, rows, tokenizer, *, max_length: int,
                 names: tuple[str, ...], evaluation: bool) -> Tables:
    if not names:
        raise DataUnavailableError(
            f"task {task.name!r} has no tag names in the registry: build them from its "
            "training split with tag_vocabulary(task, rows) and pass label_names=")
    words = _column(rows, str(task.columns["tokens"]))
    tags = _column(rows, str(task.columns["tags"]))
    uneven = [i for i, (w, t) in enumerate(zip(words, tags)) if len(w) != len(t)]
    if uneven:
        raise DataUnavailableError(f"task {task.name!r}: rows {uneven[:5]} have as many tags "
                                   "as words in no sentence; fix the files")
    flat = _label_ids(task, [t for sent in tags for t in sent], names)
    bad = flat[(flat < 0) | (flat >= len(names))]
    if len(bad):
        raise DataUnavailableError(
            f"task {task.name!r}: tag ids {sorted(set(bad.tolist()))[:5]} are outside "
            f"0..{len(names) - 1}; fix the tag column or the tag names")
    word_tags = np.split(flat, np.cumsum([len(t) for t in tags])[:-1]) if tags else []
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    labels, first = [], []
    for i, gold in enumerate(word_tags):
        lab = np.full(len(enc["input_ids"][i]), IGNORE_INDEX, dtype=np.int32)
        pos = np.full(len(gold), -1, dtype=np.int32)
        previous = None
        for k, word in enumerate(enc.word_ids(i)):
            if word is not None and word != previous:
                lab[k], pos[word] = gold[word], k
            previous = word
        labels.append(lab)
        first.append(pos)
    columns = {"ids": pa.array(enc["input_ids"], type=_IDS), "labels": pa.array(labels, type=_IDS)}
    if evaluation:
        columns.update(word_tags=pa.array(word_tags, type=_IDS),
                       first_token=pa.array(first, type=_IDS))
    return {"rows": pa.table(columns)}


# -- retrieval -------------------------------------------------------------------------------
def _unique(keys: list[str], texts: list[str]) -> tuple[list[str], list[str], dict[str, int]]:
    """Each key once, with the text of its first row, and each key's row."""
    row: dict[str, int] = {}
    kept = []
    for k, t in zip(keys, texts):
        if k not in row:
            row[k] = len(row)
            kept.append(t)
    return list(row), kept, row


def _encode_pairs(task: TaskSpec, rows, tokenizer, *, max_length: int) -> Tables:
    col = task.columns
    src = [str(s).strip() for s in _values(rows, col["source"])]
    tgt = [str(s).strip() for s in _values(rows, col["target"])]
    if col.get("source_id") and col.get("target_id"):
        src_by_row = [str(k) for k in _values(rows, col["source_id"])]
        tgt_by_row = [str(k) for k in _values(rows, col["target_id"])]
        src_keys, src, src_row = _unique(src_by_row, src)
        tgt_keys, tgt, tgt_row = _unique(tgt_by_row, tgt)
        pairs = dict.fromkeys((src_row[s], tgt_row[t]) for s, t in zip(src_by_row, tgt_by_row))
        gold = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
    else:
        src_keys = [str(i) for i in range(len(src))]
        tgt_keys = list(src_keys)
        gold = np.stack([np.arange(len(src)), np.arange(len(src))], axis=1).astype(np.int64)
    kw = dict(truncation=True, max_length=max_length)
    def side(texts: list[str], keys: list[str]) -> pa.Table:
        return pa.table({"ids": pa.array(tokenizer(texts, **kw)["input_ids"], type=_IDS),
                         "text": pa.array(texts, type=pa.string()),
                         "key": pa.array(keys, type=pa.string())})

    return {"source": side(src, src_keys), "target": side(tgt, tgt_keys),
            "gold": pa.table({"source": pa.array(gold[:, 0], type=pa.int32()),
                              "target": pa.array(gold[:, 1], type=pa.int32())})}


