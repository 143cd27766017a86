"""Tokenizing a loaded split, per format, into what the heads train and score on.

``encode`` returns: ``Encoded`` (classification, multiple choice: ids per
example, per choice), ``EncodedSpans`` (span QA: doc-stride features with
start/end positions, offsets and the gold answers), ``EncodedTags`` (tagging: a
label on each word's first sub-token, ``IGNORE_INDEX`` elsewhere) and
``EncodedPairs`` (retrieval: both sides' sentences and the gold alignment).
Examples are tokenized once into id lists and padded per batch to the batch's
own longest sequence, so no step computes on padding beyond its batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from spaces.tasks import ColumnSpec, TaskSpec
from trainables.data import DataUnavailableError
from trainables.tokens import BUCKET, TokenColumn, bucket_width, rows_on

#: label of positions that are not scored (special tokens, later sub-tokens, padding)
IGNORE_INDEX = -100
#: the tag that stands for tags outside a vocabulary built by ``tag_vocabulary``
UNK_TAG = "<unk>"


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


class _OnDevice:
    """Batches built on the training device from the split's token columns (the lean
    step): the same tensors as ``batch(index)`` but padded to a shape bucket, with the
    split's ids, labels and positions copied to the device once, on first use."""

    def _cached(self, key: str, build):
        cache = self.__dict__.setdefault("_device_cache", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def _column(self, name: str, rows, fill: int) -> TokenColumn:
        return self._cached(name, lambda: TokenColumn(rows, fill=fill))

    def _tensor(self, name: str, values: np.ndarray, device: torch.device) -> torch.Tensor:
        return self._cached(f"{name}@{device}", lambda: torch.tensor(values).to(device))

    def lengths(self) -> np.ndarray:
        """Tokens of each example (all choices of a multiple-choice example together)."""
        raise NotImplementedError

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        raise NotImplementedError


# -- classification and multiple choice ------------------------------------------------------
@dataclass
class Encoded(_OnDevice):
    """Tokenized examples of one task split: ids per example (per choice for MC)."""

    task: TaskSpec
    ids: list  # classification: list[list[int]]; multiple choice: list[list[list[int]]]
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Pad the chosen examples to their longest sequence."""
        rows = [self.ids[i] for i in index]
        if self.task.format == "multiple_choice":
            flat = [seq for choices in rows for seq in choices]
            ids, mask = _pad(flat, self.pad_id)
            shape = (len(rows), len(rows[0]), ids.shape[-1])
            ids, mask = ids.view(shape), mask.view(shape)
        else:
            ids, mask = _pad(rows, self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,
                "labels": torch.as_tensor(self.labels[index], dtype=torch.long)}

    def lengths(self) -> np.ndarray:
        if self.task.format == "multiple_choice":
            return np.asarray([sum(len(s) for s in x) for x in self.ids], dtype=np.int64)
        return np.asarray([len(x) for x in self.ids], dtype=np.int64)

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        rows = rows_on(index, device)
        labels = self._tensor("labels", self.labels, device)[rows]
        if self.task.format == "multiple_choice":
            col = self._column("ids", [s for x in self.ids for s in x], self.pad_id)
            choices = len(self.ids[0]) if self.ids else 1
            seqs = (index[:, None] * choices + np.arange(choices)).ravel()
            ids, mask = col.gather(rows_on(seqs, device),
                                   bucket_width(col.longest(seqs), bucket), device)
            shape = (len(index), choices, ids.shape[-1])
            return {"input_ids": ids.view(shape), "attention_mask": mask.view(shape),
                    "labels": labels}
        col = self._column("ids", self.ids, self.pad_id)
        ids, mask = col.gather(rows, bucket_width(col.longest(index), bucket), device)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def eval_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        # sorted by length so each eval batch pads little
        order = np.argsort([_length(x) for x in self.ids], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield {**self.batch(idx), "index": torch.as_tensor(idx)}


def _length(x) -> int:
    return max(len(s) for s in x) if x and isinstance(x[0], list) else len(x)


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def encode(task: TaskSpec, rows, tokenizer, *, max_length: int, limit: int = 0,
           stride: int | None = None, max_query_length: int = 64,
           label_names: Sequence[str] | None = None) -> EncodedSplit:
    """Tokenize a loaded split (``limit`` > 0 keeps the first rows).

    Span QA: ``stride`` tokens overlap between the windows of a long context
    (default ``max_length // 3``, XTREME's 128 of 384), questions keep at most
    ``max_query_length`` tokens. Tagging: ``label_names`` overrides the task's tag
    names (CCG's come from its training file: ``tag_vocabulary``).
    """
    if limit and len(rows) > limit:
        rows = rows.select(range(limit))
    _check_columns(task, rows)
    if task.format == "span_qa":
        return _encode_spans(task, rows, tokenizer, max_length=max_length,
                             stride=max_length // 3 if stride is None else stride,
                             max_query_length=max_query_length)
    if task.format == "tagging":
        return _encode_tags(task, rows, tokenizer, max_length=max_length,
                            names=tuple(label_names) if label_names is not None else task.labels)
    if task.format == "retrieval":
        return _encode_pairs(task, rows, tokenizer, max_length=max_length)
    col = task.columns
    kw = dict(truncation=True, max_length=max_length)
    row_names = None
    if task.format == "multiple_choice":
        contexts, choices = _values(rows, col["context"]), _lists(rows, col["choices"])
        # one tokenizer call for all (context, choice) pairs, regrouped per example
        flat = tokenizer([c for c, ch in zip(contexts, choices) for _ in ch],
                         [x for ch in choices for x in ch], **kw)["input_ids"]
        ids, start = [], 0
        for ch in choices:
            ids.append(flat[start:start + len(ch)])
            start += len(ch)
        if task.choice_label_column:
            row_names = _column(rows, task.choice_label_column)
    else:
        second = _values(rows, col["text_b"]) if col.get("text_b") else None
        ids = tokenizer(_values(rows, col["text_a"]), second, **kw)["input_ids"]
    labels = _label_ids(task, _values(rows, col["label"]), task.labels, row_names)
    bad = labels[(labels < 0) | (labels >= task.num_labels)]
    if len(bad):
        raise DataUnavailableError(
            f"task {task.name!r}: labels {sorted(set(bad.tolist()))[:5]} are outside "
            f"0..{task.num_labels - 1}; drop unlabelled rows or fix the label column")
    return Encoded(task, ids, labels, tokenizer.pad_token_id)


def _sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    # sorted by length so each eval batch pads little
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def _pad_labels(seqs: Sequence[np.ndarray], width: int) -> torch.Tensor:
    out = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s)
    return out


class _Sequences(_OnDevice):
    """One id list per row (``ids``), batched by the subclass's ``batch(index)``."""

    ids: list[list[int]]
    pad_id: int

    def lengths(self) -> np.ndarray:
        return np.asarray([len(x) for x in self.ids], dtype=np.int64)

    def _device_ids(self, index: np.ndarray, device: torch.device, bucket: int):
        col = self._column("ids", self.ids, self.pad_id)
        rows = rows_on(index, device)
        ids, mask = col.gather(rows, bucket_width(col.longest(index), bucket), device)
        return rows, ids, mask

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def eval_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        for idx in _sorted_batches([len(x) for x in self.ids], batch_size):
            yield {**self.batch(idx), "index": torch.as_tensor(idx)}


# -- span QA ---------------------------------------------------------------------------------
@dataclass
class EncodedSpans(_Sequences):
    """Doc-stride features of a span-QA split, as HF ``run_qa`` prepares them.

    One feature per window of a context; a feature's start/end positions are
    the tokens of the example's first gold answer, or the CLS token (0) where
    the answer lies outside the window. ``offsets`` maps each token to its
    character span in the context, None for question and special tokens (the
    form ``metrics.best_span`` takes).
    """

    task: TaskSpec
    ids: list[list[int]]
    start_positions: np.ndarray
    end_positions: np.ndarray
    offsets: list[list[tuple[int, int] | None]]
    #: the example (row) each feature comes from
    feature_example: np.ndarray
    example_ids: list[str]
    contexts: list[str]
    #: every gold answer text of each example (SQuAD dev has several)
    answers: list[list[str]]
    pad_id: int


    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        ids, mask = _pad([self.ids[i] for i in index], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,
                "start_positions": torch.as_tensor(self.start_positions[index], dtype=torch.long),
                "end_positions": torch.as_tensor(self.end_positions[index], dtype=torch.long)}

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        rows, ids, mask = self._device_ids(index, device, bucket)
        return {"input_ids": ids, "attention_mask": mask,
                "start_positions": self._tensor("start", self.start_positions, device)[rows],
                "end_positions": self._tensor("end", self.end_positions, device)[rows]}


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


def _encode_spans(task: TaskSpec, rows, tokenizer, *, max_length: int, stride: int,
                  max_query_length: int) -> EncodedSpans:
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - max_query_length
    if stride >= room:
        # the tokenizer would panic: every window needs more context tokens than the stride
        raise ValueError(
            f"task {task.name!r}: stride={stride} leaves no context to a window of "
            f"max_length={max_length} with questions of up to {max_query_length} tokens; "
            f"use a stride below {room}, a larger max_length or a smaller max_query_length")
    col = task.columns
    questions = _cap_questions([q.lstrip() for q in _values(rows, col["question"])], tokenizer,
                               max_query_length)
    contexts = _values(rows, col["context"])
    answers = _column(rows, col["answers"])
    ids_col = col.get("id")
    example_ids = [str(x) for x in _values(rows, ids_col)] if ids_col else \
        [str(i) for i in range(len(rows))]
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    sample = enc["overflow_to_sample_mapping"]
    starts, ends, offsets = [], [], []
    for i, offs in enumerate(enc["offset_mapping"]):
        seq = enc.sequence_ids(i)
        cls = enc["input_ids"][i].index(tokenizer.cls_token_id)
        offsets.append([tuple(o) if seq[k] == 1 else None for k, o in enumerate(offs)])
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
    return EncodedSpans(
        task, enc["input_ids"], np.asarray(starts, dtype=np.int64),
        np.asarray(ends, dtype=np.int64), offsets, np.asarray(sample, dtype=np.int64),
        example_ids, contexts, [list(a["text"]) for a in answers], tokenizer.pad_token_id)


# -- tagging ---------------------------------------------------------------------------------
@dataclass
class EncodedTags(_Sequences):
    """Tokenized sentences of a tagging split, as HF ``run_ner`` labels them.

    Each word's first sub-token carries its tag id; later sub-tokens, special
    tokens (and padding, in a batch) carry ``IGNORE_INDEX``. Words past
    ``max_length`` are cut: their ``first_token`` is -1, their gold tags stay in
    ``word_tags`` so that scores can count them.
    """

    task: TaskSpec
    ids: list[list[int]]
    labels: list[np.ndarray]
    #: gold tag ids per word
    word_tags: list[np.ndarray]
    #: the position of each word's first sub-token, -1 where truncated
    first_token: list[np.ndarray]
    label_names: tuple[str, ...]
    pad_id: int


    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        ids, mask = _pad([self.ids[i] for i in index], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,
                "labels": _pad_labels([self.labels[i] for i in index], ids.shape[1])}

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        rows, ids, mask = self._device_ids(index, device, bucket)
        labels, _ = self._column("labels", [x.tolist() for x in self.labels],
                                 IGNORE_INDEX).gather(rows, ids.shape[1], device)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


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
                 names: tuple[str, ...]) -> EncodedTags:
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
        lab = np.full(len(enc["input_ids"][i]), IGNORE_INDEX, dtype=np.int64)
        pos = np.full(len(gold), -1, dtype=np.int64)
        previous = None
        for k, word in enumerate(enc.word_ids(i)):
            if word is not None and word != previous:
                lab[k], pos[word] = gold[word], k
            previous = word
        labels.append(lab)
        first.append(pos)
    return EncodedTags(task, enc["input_ids"], labels, list(word_tags), first, names,
                       tokenizer.pad_token_id)


# -- retrieval -------------------------------------------------------------------------------
@dataclass
class EncodedPairs:
    """Both sides of a retrieval split and their gold alignment.

    Sentences are stripped. With sentence ids (BUCC) each side holds each id's
    sentence once and ``gold`` pairs rows of the two sides by the ids of the
    gold rows; without (Tatoeba) row i of the source is aligned with row i of
    the target.
    """

    task: TaskSpec
    source_ids: list[list[int]]
    target_ids: list[list[int]]
    source_texts: list[str]
    target_texts: list[str]
    #: sentence ids (BUCC's ``de-000000317``), or row numbers as strings
    source_keys: list[str]
    target_keys: list[str]
    #: ``[n_pairs, 2]``: (source row, target row) of each gold pair
    gold: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.gold)

    def gold_keys(self) -> list[tuple[str, str]]:
        """Gold pairs as (source id, target id), as ``metrics.bucc_f1`` takes them."""
        return [(self.source_keys[s], self.target_keys[t]) for s, t in self.gold.tolist()]

    def batches(self, side: str, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Padded batches of one side (``"source"`` or ``"target"``), with their row index."""
        if side not in ("source", "target"):
            raise ValueError(f"side={side!r}; use 'source' or 'target'")
        seqs = self.source_ids if side == "source" else self.target_ids
        for idx in _sorted_batches([len(x) for x in seqs], batch_size):
            ids, mask = _pad([seqs[i] for i in idx], self.pad_id)
            yield {"input_ids": ids, "attention_mask": mask, "index": torch.as_tensor(idx)}


def _unique(keys: list[str], texts: list[str]) -> tuple[list[str], list[str], dict[str, int]]:
    """Each key once, with the text of its first row, and each key's row."""
    row: dict[str, int] = {}
    kept = []
    for k, t in zip(keys, texts):
        if k not in row:
            row[k] = len(row)
            kept.append(t)
    return list(row), kept, row


def _encode_pairs(task: TaskSpec, rows, tokenizer, *, max_length: int) -> EncodedPairs:
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
    return EncodedPairs(task, tokenizer(src, **kw)["input_ids"], tokenizer(tgt, **kw)["input_ids"],
                        src, tgt, src_keys, tgt_keys, gold, tokenizer.pad_token_id)


EncodedSplit = Encoded | EncodedSpans | EncodedTags | EncodedPairs
