"""Encoded splits: the tensors a head trains and scores on, read from Arrow tables.

A split is a few Arrow tables (``trainables.encoding`` builds them, the token cache
memory-maps them): token ids in Arrow's list layout (one flat int32 buffer and an
offset per row, ``TokenColumn``), int32 labels, and only for evaluation sets what
scoring needs besides (span-QA character offsets, contexts and answers; gold tags per
word). Nothing here holds a Python list per example of a training set, so a step's
host work depends on its batch, never on the split's size.

``Encoded`` (classification, multiple choice: one sequence per example, per choice),
``EncodedSpans`` (span QA: doc-stride features), ``EncodedTags`` (tagging: a label on
each word's first sub-token, ``IGNORE_INDEX`` elsewhere) and ``EncodedPairs``
(retrieval: both sides and the gold alignment).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from spaces.tasks import TaskSpec
from trainables.tokens import BUCKET, TokenColumn, bucket_width, rows_on

#: label of positions that are not scored (special tokens, later sub-tokens, padding)
IGNORE_INDEX = -100


def _ints(column) -> np.ndarray:
    """An int column as NumPy (a view of the memory map where Arrow allows)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.Array):
        return column.to_numpy(zero_copy_only=False)
    return np.asarray(column)


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def _pad_labels(seqs: Sequence[np.ndarray], width: int) -> torch.Tensor:
    out = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


def _sorted_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    # sorted by length so each eval batch pads little
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


class _OnDevice:
    """Batches built on the training device from the split's token columns (the lean
    step): the same tensors as ``batch(index)`` but padded to a shape bucket, with the
    split's labels and positions copied to the device once, on first use."""

    def _tensor(self, name: str, values: np.ndarray, device: torch.device) -> torch.Tensor:
        cache = self.__dict__.setdefault("_device_cache", {})
        key = f"{name}@{device}"
        if key not in cache:
            array = np.asarray(values, dtype=np.int64)
            if device.type != "cpu":
                cache[key] = torch.tensor(array, device=device)  # one copy, straight to the device
            else:
                # on the CPU the split's buffer is shared, not copied; it may be Arrow's
                # (read-only), and the cache never writes to it, so torch's warning about
                # non-writable arrays does not apply
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                    cache[key] = torch.as_tensor(array)
        return cache[key]

    def lengths(self) -> np.ndarray:
        """Tokens of each example (all choices of a multiple-choice example together)."""
        raise NotImplementedError

    def longest(self) -> int:
        """Tokens of the split's longest sequence (one choice of a multiple-choice example)."""
        raise NotImplementedError

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        raise NotImplementedError


# -- classification and multiple choice ------------------------------------------------------
@dataclass
class Encoded(_OnDevice):
    """Tokenized examples of one task split.

    ``ids[i]`` is example i's sequence; for multiple choice, the list of its ``choices``
    sequences (``seqs`` holds them all, example-major)."""

    task: TaskSpec
    #: the sequences: one per example, ``choices`` per example for multiple choice
    seqs: TokenColumn | Any
    labels: np.ndarray
    pad_id: int
    choices: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.seqs, TokenColumn):  # lists: per example (per choice for MC)
            rows = list(self.seqs)
            if self.task.format == "multiple_choice":
                self.choices = len(rows[0]) if rows else self.task.num_labels
                rows = [s for x in rows for s in x]
            self.seqs = TokenColumn(rows, fill=self.pad_id)
        self.labels = _ints(self.labels)

    @property
    def ids(self):
        """Example i: its sequence, or the list of its choices' sequences."""
        if self.task.format != "multiple_choice":
            return self.seqs
        return _Choices(self.seqs, self.choices)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Pad the chosen examples to their longest sequence."""
        if self.task.format == "multiple_choice":
            flat = [self.seqs[int(s)] for s in self._choice_rows(index)]
            ids, mask = _pad(flat, self.pad_id)
            shape = (len(index), self.choices, ids.shape[-1])
            ids, mask = ids.view(shape), mask.view(shape)
        else:
            ids, mask = _pad([self.seqs[int(i)] for i in index], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,
                "labels": torch.as_tensor(self.labels[index], dtype=torch.long)}

    def _choice_rows(self, index: np.ndarray) -> np.ndarray:
        return (np.asarray(index)[:, None] * self.choices + np.arange(self.choices)).ravel()

    def lengths(self) -> np.ndarray:
        if self.task.format == "multiple_choice":
            return self.seqs.lengths.reshape(-1, self.choices).sum(1)
        return self.seqs.lengths

    def longest(self) -> int:
        return self.seqs.longest()

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        rows = rows_on(index, device)
        labels = self._tensor("labels", self.labels, device)[rows]
        col = self.seqs
        if self.task.format == "multiple_choice":
            seqs = self._choice_rows(index)
            ids, mask = col.gather(rows_on(seqs, device),
                                   bucket_width(col.longest(seqs), bucket), device)
            shape = (len(index), self.choices, ids.shape[-1])
            return {"input_ids": ids.view(shape), "attention_mask": mask.view(shape),
                    "labels": labels}
        ids, mask = col.gather(rows, bucket_width(col.longest(index), bucket), device)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def eval_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        widest = self.seqs.lengths.reshape(-1, self.choices).max(1) if len(self.seqs) else \
            np.zeros(0, dtype=np.int64)
        for idx in _sorted_batches(widest, batch_size):
            yield {**self.batch(idx), "index": torch.as_tensor(idx)}


class _Choices:
    """``Encoded.ids`` of a multiple-choice split: example i as its list of choice rows."""

    def __init__(self, seqs: TokenColumn, choices: int):
        self.seqs, self.choices = seqs, choices

    def __len__(self) -> int:
        return len(self.seqs) // self.choices

    def __getitem__(self, i: int) -> list[np.ndarray]:
        return [self.seqs[i * self.choices + c] for c in range(self.choices)]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class _Sequences(_OnDevice):
    """One token row per item (``ids``), batched by the subclass's ``batch(index)``."""

    ids: TokenColumn
    pad_id: int

    def lengths(self) -> np.ndarray:
        return self.ids.lengths

    def longest(self) -> int:
        return self.ids.longest()

    def _device_ids(self, index: np.ndarray, device: torch.device, bucket: int):
        rows = rows_on(index, device)
        ids, mask = self.ids.gather(rows, bucket_width(self.ids.longest(index), bucket), device)
        return rows, ids, mask

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def eval_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        for idx in _sorted_batches(self.ids.lengths, batch_size):
            yield {**self.batch(idx), "index": torch.as_tensor(idx)}


# -- span QA ---------------------------------------------------------------------------------
@dataclass
class EncodedSpans(_Sequences):
    """Doc-stride features of a span-QA split, as HF ``run_qa`` prepares them.

    One feature per window of a context; a feature's start/end positions are
    the tokens of the example's first gold answer, or the CLS token (0) where
    the answer lies outside the window. Evaluation sets also carry ``offsets``
    (each token's character span in the context, None for question and special
    tokens: the form ``metrics.best_span`` takes), the example ids, contexts and
    every gold answer; training sets leave them empty.
    """

    task: TaskSpec
    ids: TokenColumn
    start_positions: np.ndarray
    end_positions: np.ndarray
    #: the example (row) each feature comes from
    feature_example: np.ndarray
    pad_id: int
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)
    example_ids: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    #: every gold answer text of each example (SQuAD dev has several)
    answers: list[list[str]] = field(default_factory=list)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        ids, mask = _pad([self.ids[int(i)] for i in index], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,
                "start_positions": torch.as_tensor(self.start_positions[index], dtype=torch.long),
                "end_positions": torch.as_tensor(self.end_positions[index], dtype=torch.long)}

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        rows, ids, mask = self._device_ids(index, device, bucket)
        return {"input_ids": ids, "attention_mask": mask,
                "start_positions": self._tensor("start", self.start_positions, device)[rows],
                "end_positions": self._tensor("end", self.end_positions, device)[rows]}


# -- tagging ---------------------------------------------------------------------------------
@dataclass
class EncodedTags(_Sequences):
    """Tokenized sentences of a tagging split, as HF ``run_ner`` labels them.

    Each word's first sub-token carries its tag id; later sub-tokens and special tokens
    carry ``IGNORE_INDEX`` (``labels`` has the offsets of ``ids``). Evaluation sets also
    carry per word its gold tag (``word_tags``) and the position of its first sub-token
    (``first_token``, -1 where ``max_length`` cut it: its gold tag still counts).
    """

    task: TaskSpec
    ids: TokenColumn
    labels: TokenColumn
    label_names: tuple[str, ...]
    pad_id: int
    word_tags: TokenColumn | None = None
    first_token: TokenColumn | None = None

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        ids, mask = _pad([self.ids[int(i)] for i in index], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,
                "labels": _pad_labels([self.labels[int(i)] for i in index], ids.shape[1])}

    def device_batch(self, index: np.ndarray, device: torch.device,
                     bucket: int = BUCKET) -> dict[str, torch.Tensor]:
        rows, ids, mask = self._device_ids(index, device, bucket)
        labels, _ = self.labels.gather(rows, ids.shape[1], device)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


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
    source_ids: TokenColumn
    target_ids: TokenColumn
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
        for idx in _sorted_batches(seqs.lengths, batch_size):
            ids, mask = _pad([seqs[int(i)] for i in idx], self.pad_id)
            yield {"input_ids": ids, "attention_mask": mask, "index": torch.as_tensor(idx)}


EncodedSplit = Encoded | EncodedSpans | EncodedTags | EncodedPairs


# -- from the tables ---------------------------------------------------------------------------
def from_tables(task: TaskSpec, tables: Mapping[str, pa.Table], meta: Mapping[str, Any]
                ) -> EncodedSplit:
    """The split that ``trainables.encoding.build_tables`` wrote as ``tables`` + ``meta``."""
    pad = int(meta["pad_id"])
    if task.format == "retrieval":
        src, tgt, gold = tables["source"], tables["target"], tables["gold"]
        return EncodedPairs(
            task, TokenColumn(src["ids"], pad), TokenColumn(tgt["ids"], pad),
            src["text"].to_pylist(), tgt["text"].to_pylist(), src["key"].to_pylist(),
            tgt["key"].to_pylist(),
            np.stack([_ints(gold["source"]), _ints(gold["target"])], axis=1).astype(np.int64)
            .reshape(-1, 2), pad)
    rows = tables["rows"]
    if task.format == "multiple_choice":  # list<list<int32>>: the choices of each example
        seqs = TokenColumn(rows["ids"].combine_chunks().flatten(), pad)
        return Encoded(task, seqs, rows["label"], pad, choices=int(meta["choices"]))
    ids = TokenColumn(rows["ids"], pad)
    if task.format == "classification":
        return Encoded(task, ids, rows["label"], pad)
    if task.format == "tagging":
        names = tuple(meta["label_names"])
        extra = ({"word_tags": TokenColumn(rows["word_tags"]),
                  "first_token": TokenColumn(rows["first_token"])}
                 if "word_tags" in rows.column_names else {})
        return EncodedTags(task, ids, TokenColumn(rows["labels"], IGNORE_INDEX), names, pad,
                           **extra)
    spans = EncodedSpans(task, ids, _ints(rows["start"]).astype(np.int64),
                         _ints(rows["end"]).astype(np.int64),
                         _ints(rows["example"]).astype(np.int64), pad)
    if "examples" in tables:  # an evaluation set: what scoring reads besides the logits
        starts, ends = TokenColumn(rows["offset_start"]), TokenColumn(rows["offset_end"])
        spans.offsets = [[(int(s), int(e)) if s >= 0 else None for s, e in zip(a, b)]
                         for a, b in zip(starts, ends)]
        examples = tables["examples"]
        spans.example_ids = examples["id"].to_pylist()
        spans.contexts = examples["context"].to_pylist()
        spans.answers = examples["answers"].to_pylist()
    return spans
