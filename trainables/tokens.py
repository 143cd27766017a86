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

import warnings
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
    """Ragged int sequences in Arrow's list layout: one flat int32 buffer and one offset
    per row, movable to a device as a whole.

    Built from a ``pyarrow`` list array (a memory-mapped token cache: no copy is made, so
    trials that map the same file share its pages) or from Python lists (tests, small
    splits). ``column[i]`` is row i as a NumPy view; ``lengths`` the tokens of each row.
    """

    def __init__(self, rows: Sequence[Sequence[int]] | pa.ListArray | pa.ChunkedArray,
                 fill: int = 0):
        if isinstance(rows, pa.ChunkedArray):
            rows = rows.combine_chunks()  # one chunk when read from the cache: no copy
        if not isinstance(rows, pa.Array):
            rows = pa.array([list(r) for r in rows], type=pa.list_(pa.int32()))
        if rows.type.value_type != pa.int32():
            rows = rows.cast(pa.list_(pa.int32()))
        self.fill = fill
        # offsets index ``rows.values`` (the whole child buffer, also for a sliced array)
        self.offsets = rows.offsets.to_numpy(zero_copy_only=False)
        self.values = rows.values.to_numpy(zero_copy_only=False) if len(rows.values) else \
            np.zeros(0, dtype=np.int32)
        self.lengths = np.diff(self.offsets).astype(np.int64)
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values, starts, lengths) on ``device``, copied there on first use (on the CPU the
        values stay the memory-mapped buffer itself)."""
        key = str(device)
        if key not in self._on:
            with warnings.catch_warnings():  # read-only memory map: torch never writes to it
                warnings.simplefilter("ignore", UserWarning)
                values = torch.from_numpy(self.values)
            host = (values, torch.from_numpy(self.offsets[:-1].astype(np.int64)),
                    torch.from_numpy(self.lengths))
            self._on[key] = tuple(t.to(device) for t in host)  # type: ignore[assignment]
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
        picked = values[flat].long() if len(values) else torch.zeros_like(flat)
        out = torch.where(mask, picked, torch.full_like(flat, self.fill))
        return out, mask.long()

    def longest(self, rows: np.ndarray | None = None) -> int:
        """Tokens of the longest of ``rows`` (default: of every row); 1 when there are none."""
        lengths = self.lengths if rows is None else self.lengths[rows]
        return int(lengths.max()) if len(lengths) else 1
