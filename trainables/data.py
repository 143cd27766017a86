"""Loading and batching task data through the registry.

Every source goes through ``datasets.load_dataset``: HF ids from the hub,
local JSONL/Parquet files, and the embedded demo suite's files. Examples are
tokenized once into id lists and padded per batch to the batch's own longest
sequence, so no step computes on padding beyond its batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from spaces.tasks import TaskSpec


class DataUnavailableError(RuntimeError):
    """A task's data could not be loaded; the message says which and how to fix it."""


def load_rows(task: TaskSpec, split: str, language: str):
    """The ``datasets.Dataset`` of one task, split and language."""
    import datasets

    src = task.source
    name = src.splits.get(split)
    if name is None:
        raise DataUnavailableError(
            f"task {task.name!r} has no {split!r} split; it has: {', '.join(src.splits)}")
    try:
        if src.kind == "hf":
            config = src.config.format(lang=language) if src.config else None
            return datasets.load_dataset(src.path, config, split=name.format(lang=language))
        if src.kind == "demo":
            from trainables.embedded import demo_suite_dir

            path = str(demo_suite_dir() / src.path / f"{name}.{language}.jsonl")
        else:
            path = src.path.format(split=name, lang=language)
        builder = "parquet" if path.endswith(".parquet") else "json"
        return datasets.load_dataset(builder, data_files=path, split="train")
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as exc:
        where = f"{src.path}" + (f" ({src.config.format(lang=language)})" if src.config else "")
        raise DataUnavailableError(
            f"could not load task {task.name!r}, split {split!r}, language {language!r} from "
            f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "If the Hugging Face hub is unreachable, download the dataset where it is reachable "
            "and point HF_DATASETS_CACHE at it (with HF_DATASETS_OFFLINE=1), or use the demo preset."
        ) from exc


@dataclass
class Encoded:
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


def encode(task: TaskSpec, rows, tokenizer, *, max_length: int, limit: int = 0) -> Encoded:
    """Tokenize a loaded split into id lists (``limit`` > 0 keeps the first rows)."""
    if limit and len(rows) > limit:
        rows = rows.select(range(limit))
    col = task.columns
    missing = [c for c in col.values() if c is not None and c not in rows.column_names]
    if missing:
        raise DataUnavailableError(
            f"task {task.name!r}: columns {missing} not found in the data (it has "
            f"{rows.column_names}); fix the task's column mapping or the files")
    kw = dict(truncation=True, max_length=max_length)
    if task.format == "multiple_choice":
        contexts, choices = list(rows[col["context"]]), list(rows[col["choices"]])
        # one tokenizer call for all (context, choice) pairs, regrouped per example
        flat = tokenizer([c for c, ch in zip(contexts, choices) for _ in ch],
                         [x for ch in choices for x in ch], **kw)["input_ids"]
        ids, start = [], 0
        for ch in choices:
            ids.append(flat[start:start + len(ch)])
            start += len(ch)
    else:
        second = list(rows[col["text_b"]]) if col.get("text_b") else None
        ids = tokenizer(list(rows[col["text_a"]]), second, **kw)["input_ids"]
    labels = np.asarray(list(rows[col["label"]]), dtype=np.int64)
    bad = labels[(labels < 0) | (labels >= task.num_labels)]
    if len(bad):
        raise DataUnavailableError(
            f"task {task.name!r}: labels {sorted(set(bad.tolist()))[:5]} are outside "
            f"0..{task.num_labels - 1}; drop unlabelled rows or fix the label column")
    return Encoded(task, ids, labels, tokenizer.pad_token_id)


class Cursor:
    """Walks a dataset in seeded, per-epoch permutations, one global batch at a time.

    Every rank holds the same cursor and takes its own slice of the global batch,
    so ranks see disjoint examples and the position is one (epoch, offset) pair.
    """

    def __init__(self, name: str, size: int, *, seed: int, global_batch: int):
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
        self.size, self.seed, self.global_batch = size, seed, global_batch
        self.epoch, self.offset = 0, 0

    def _perm(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.key, self.epoch]).permutation(self.size)

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
