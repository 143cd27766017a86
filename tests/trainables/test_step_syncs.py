"""The lean step never makes the host wait for the device between flushes.

On a GPU the host queues steps ahead of the device only while nothing asks the
device for a value: ``.item()``, ``bool(tensor)``, ``.tolist()``, a copy to the
host, or a blocking copy from it (PyTorch synchronises the stream after a
host-to-device copy without ``non_blocking``). This machine has no GPU, so the
steps run on PyTorch's ``meta`` device, which stands in for it: its tensors have
shapes but no values, and every call that would wait for a device value is
recorded by ``DeviceWaits``. Host-side values (the optimizer's step count,
batch shapes) stay free, as on a GPU.
"""

from __future__ import annotations

import os
import traceback

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from trainables.data import Cursor
from trainables.step import TrainStep

DEVICE = torch.device("meta")
#: one task per trainable format
TASKS = ("mnli", "hellaswag", "squad", "ccg")
#: calls that hand a tensor's values to the host
_READS = frozenset({"item", "tolist", "__bool__", "__int__", "__float__", "__index__",
                    "numpy", "cpu"})


class DeviceWait(AssertionError):
    """A read of a device tensor's values (raised where it happens: meta has none)."""


class DeviceWaits(TorchFunctionMode):
    """Catches each call that would make the host wait for ``DEVICE``: a read of a device
    tensor's values raises ``DeviceWait``; a copy between the host and the device without
    ``non_blocking`` is recorded in ``waits``. Both name the caller's file and line."""

    def __init__(self):
        super().__init__()
        self.waits: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        first = args[0] if args else None
        on_device = isinstance(first, torch.Tensor) and first.device == DEVICE
        if name in _READS and on_device:
            self.waits.append(f"{name}() of a device tensor at {_caller()}")
            raise DeviceWait(self.waits[-1])
        if name == "to" and isinstance(first, torch.Tensor):
            target, _, non_blocking, _ = torch._C._nn._parse_to(*args[1:], **kwargs)
            if target is not None and (target == DEVICE) != on_device and not non_blocking:
                self.waits.append(f"blocking copy {first.device} -> {target} at {_caller()}")
        return func(*args, **kwargs)


def _caller() -> str:
    """The innermost frame outside torch: the code that asked."""
    torch_dir = os.path.dirname(torch.__file__)
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.startswith(torch_dir):
            return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    return "?"


@pytest.fixture
def steps_of(train_split, trainable):
    """``steps_of(name, kind)``: a ``kind`` step of ``name``'s format on ``DEVICE`` and a
    function that runs its step ``n`` on the next batch."""

    def build(name: str, kind: str):
        split = train_split(name)
        model, opt, sched = trainable(name, kind, split, DEVICE, total=100)
        steps = TrainStep(model, model, DEVICE, lean=kind == "lean")
        cursor = Cursor(name, len(split), seed=0, global_batch=4, lengths=split.lengths(),
                        group=4)

        def step(n: int):
            return steps(name, steps.batch(split, cursor.next(0, 1)), opt, sched, n, n)

        return steps, step

    return build


@pytest.mark.parametrize("name", TASKS)
def test_lean_steps_queue_without_waiting_for_the_device(name, steps_of):
    steps, step = steps_of(name, "lean")
    with DeviceWaits():  # reads raise; its copies are the split's columns, once a trial
        step(1)
    with DeviceWaits() as mode:
        for n in range(2, 6):
            step(n)
    assert mode.waits == [], f"{name}: the lean step waited for the device: {mode.waits[:5]}"
    assert len(steps._pending) == 5  # the losses are still on the device, for the flush


def test_the_plain_step_and_a_flush_are_seen_waiting(steps_of):
    """The detector above catches waits: the plain step reads each loss back, the lean
    step's flush reads its totals, and a copy to the device without non_blocking."""
    _, step = steps_of("mnli", "plain")
    with DeviceWaits(), pytest.raises(DeviceWait, match=r"\(\) of a device tensor at \w+\.py:\d+"):
        step(1)
    steps, step = steps_of("mnli", "lean")
    step(1)
    with DeviceWaits(), pytest.raises(DeviceWait, match=r"item\(\) of a device tensor at step\.py"):
        steps.flush()
    with DeviceWaits() as mode:
        torch.as_tensor(np.arange(4)).to(DEVICE)
        torch.as_tensor(np.arange(4)).to(DEVICE, non_blocking=True)
    assert len(mode.waits) == 1 and mode.waits[0].startswith("blocking copy cpu -> meta at ")
