"""Pre-tokenized sequences kept in Arrow's list layout, batched on the device.

A split's token ids are one flat int32 buffer and one offset per row (a
``pyarrow.ListArray``: no Python list per example). The lean training step
moves both to the training device once and builds every batch there with one
gather: no per-step padding loop on the host and no host-to-device copy of
each batch. Batches are padded to a *shape bucket* (the batch's longest row
rounded up to a multiple of ``bucket``), so a trial sees a few static shapes,
which CUDA graphs and ``torch.compile`` can reuse.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import torch

#: pad widths are rounded up to a multiple of this (tensor cores like multiples of 8;
#: 16 keeps the number of shapes small: 8 buckets up to 128 tokens)
BUCKET = 16


def bucket_width(longest: int, bucket: int = BUCKET, cap: int | None = None) -> int:
    """``longest`` rounded up to a multiple of ``bucket`` (at most ``cap``, at least 1)."""
    width = -(-max(longest, 1) // bucket) * bucket
    return min(width, cap) if cap else width


def rows_on(index: np.ndarray, device: torch.device) -> torch.Tensor:
    """A batch's row numbers on ``device``, copied without making the host wait.

    A plain ``.to(device)`` from host memory synchronises the CUDA stream after the
    copy: the host would wait for every step already queued, once per batch. From
    pinned memory with ``non_blocking`` the copy is queued like a kernel, and PyTorch's
    pinned-memory cache keeps the buffer until the copy has run.
    """
    rows = torch.as_tensor(index)
    if device.type == "cuda":
        rows = rows.pin_memory()
    return rows.to(device, non_blocking=True)


class TokenColumn:
    """Ragged int sequences: Arrow's list layout, movable to a device as a whole."""

    def __init__(self, rows: Sequence[Sequence[int]] | pa.ListArray, fill: int = 0):
        array = rows if isinstance(rows, pa.Array) else pa.array(rows, type=pa.list_(pa.int32()))
        self.array: pa.ListArray = array
        self.fill = fill
        offsets = array.offsets.to_numpy().astype(np.int64)
        self.lengths = np.diff(offsets)
        values = array.values.to_numpy(zero_copy_only=False).astype(np.int64)
        self._host = (torch.from_numpy(values), torch.from_numpy(offsets[:-1].copy()),
                      torch.from_numpy(self.lengths.copy()))
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values, starts, lengths) on ``device``, copied there on first use."""
        key = str(device)
        if key not in self._on:
            self._on[key] = tuple(t.to(device) for t in self._host)  # type: ignore[assignment]
        return self._on[key]

    def gather(self, rows: torch.Tensor, width: int, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[len(rows), width]`` values (``fill`` past each row's end) and the 0/1 mask.

        ``rows`` (a tensor on ``device``) index this column; a row longer than
        ``width`` is cut (callers pass a width ≥ the longest row)."""
        values, starts, lengths = self.on(device)
        pos = torch.arange(width, device=device)
        n = lengths[rows].unsqueeze(1)
        mask = pos < n
        flat = (starts[rows].unsqueeze(1) + pos).clamp_(max=max(len(values) - 1, 0))
        out = torch.where(mask, values[flat], torch.full_like(flat, self.fill))
        return out, mask.long()

    def longest(self, rows: np.ndarray) -> int:
        return int(self.lengths[rows].max()) if len(rows) else 1
