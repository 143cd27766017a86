"""The lean training step computes what the plain step computes.

Same data, same seed, CPU, fp32, the tiny model: the plain step (host padding
to each batch's longest row, eager attention, a host sync per step) and the
lean step (batches gathered on the device from Arrow columns, padded to shape
buckets, SDPA attention, one sync per flush) give the same loss curve within
``TOLERANCE``. Dropout is off in both: its masks are drawn per tensor element,
so two paddings of one batch draw different masks by design.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spaces.config import TrialConfig
from spaces.tasks import get_task
from trainables.data import Cursor
from trainables.encoding import IGNORE_INDEX
from trainables.step import TrainStep
from trainables.tokens import BUCKET, TokenColumn, bucket_width

CPU = torch.device("cpu")
#: largest |plain loss − lean loss| allowed at any step (fp32; measured 1.2e-5 here, on multiple
#: choice: eager and SDPA attention round differently, and training carries it over the steps)
TOLERANCE = 1e-4
STEPS = 40
#: one task per trainable format
FORMATS = {"mnli": "classification", "hellaswag": "multiple_choice", "squad": "span_qa",
           "ccg": "tagging"}


def _curve(trainable, step_kind: str, task_name: str, split, order: list[np.ndarray]
           ) -> tuple[list[float], TrainStep]:
    model, opt, sched = trainable(task_name, step_kind, split, CPU, total=len(order),
                                  cfg=TrialConfig(learning_rate=1e-3, warmup_ratio=0.1),
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    steps = TrainStep(model, model, CPU, lean=step_kind == "lean")
    losses: list[float] = []
    for n, index in enumerate(order, 1):
        value = steps(task_name, steps.batch(split, index), opt, sched, n, n - 1)
        if value is not None:
            losses.append(value)
        if n % 10 == 0:
            losses.extend(steps.flush())
    losses.extend(steps.flush())
    return losses, steps


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_lean_step_loss_curve_matches_the_plain_step(name, train_split, trainable):
    split = train_split(name)
    assert get_task(name).format == FORMATS[name]
    cursor = Cursor(name, len(split), seed=0, global_batch=4, lengths=split.lengths(), group=4)
    order = [cursor.next(0, 1) for _ in range(STEPS)]
    plain, plain_steps = _curve(trainable, "plain", name, split, order)
    lean, lean_steps = _curve(trainable, "lean", name, split, order)
    assert len(plain) == len(lean) == STEPS
    gap = max(abs(a - b) for a, b in zip(plain, lean))
    assert gap <= TOLERANCE, f"{name}: lean and plain losses differ by {gap:.2e}"
    assert plain[-1] < plain[0], f"{name}: the loss did not fall ({plain[0]:.3f} -> {plain[-1]:.3f})"
    # the same real tokens were trained on, counted on both sides
    real = sum(int(split.lengths()[i].sum()) for i in order)
    assert plain_steps.real_tokens == lean_steps.real_tokens == real
    assert lean_steps.throughput()["train_tokens_per_s"] > 0


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_device_batches_are_the_host_batches_padded_to_a_bucket(name, train_split):
    split = train_split(name)
    index = np.arange(len(split))[::-1][:6].copy()
    host = split.batch(index)
    dev = split.device_batch(index, CPU)
    assert set(host) == set(dev)
    width, bucketed = host["input_ids"].shape[-1], dev["input_ids"].shape[-1]
    assert bucketed == bucket_width(width) and bucketed % BUCKET == 0
    for key, value in host.items():
        got = dev[key]
        if value.ndim >= 2 and value.shape[-1] == width:  # per-token: the extra columns are padding
            assert torch.equal(got[..., :width], value), key
            pad = {"input_ids": split.pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}[key]
            assert (got[..., width:] == pad).all(), key
        else:
            assert torch.equal(got, value), key


def test_token_column_gathers_ragged_rows_with_fill():
    col = TokenColumn([[5, 6, 7], [], [8]], fill=-1)
    ids, mask = col.gather(torch.tensor([2, 0, 1]), 4, CPU)
    assert ids.tolist() == [[8, -1, -1, -1], [5, 6, 7, -1], [-1, -1, -1, -1]]
    assert mask.tolist() == [[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    assert col.lengths.tolist() == [3, 0, 1] and col.longest(np.array([0, 2])) == 3
    assert bucket_width(1) == 16 and bucket_width(17) == 32 and bucket_width(40, cap=36) == 36


def test_length_grouped_cursor_keeps_epochs_and_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 128, size=1003)
    grouped = Cursor("t", 1003, seed=1, global_batch=32, lengths=lengths, group=8)
    plain = Cursor("t", 1003, seed=1, global_batch=32)
    batches = [grouped.next(0, 1) for _ in range(32)]  # one epoch: 31 full batches + 11
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(1003)), "each example once per epoch"
    assert len(batches[-1]) == 11, "the partial batch comes last"

    def waste(bs):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in bs) / sum(
            len(b) * lengths[b].max() for b in bs)

    plain_batches = [plain.next(0, 1) for _ in range(32)]
    assert waste(batches) < 0.25 * waste(plain_batches), (waste(batches), waste(plain_batches))
    # batches of one epoch are shuffled: not sorted by length across the epoch
    tops = [lengths[b].max() for b in batches[:-1]]
    assert tops != sorted(tops) and tops != sorted(tops, reverse=True)
    # resumable: a cursor restored from the state continues with the same batches
    again = Cursor("t", 1003, seed=1, global_batch=32, lengths=lengths, group=8)
    for _ in range(5):
        again.next(0, 1)
    state = again.state_dict()
    fresh = Cursor("t", 1003, seed=1, global_batch=32, lengths=lengths, group=8)
    fresh.load_state_dict(state)
    assert all(np.array_equal(fresh.next(0, 1), b) for b in batches[5:])
    # the next epoch is another arrangement
    assert not np.array_equal(grouped.next(0, 1), batches[0])


def test_a_non_finite_loss_fails_at_the_flush_and_names_its_step(train_split, trainable):
    split = train_split("mnli")
    model, opt, sched = trainable("mnli", "lean", split, CPU, total=10)
    steps = TrainStep(model, model, CPU, lean=True,
                      corrupt=lambda loss, n: loss * float("nan") if n == 3 else loss)
    for n in range(1, 6):
        assert steps("mnli", steps.batch(split, np.arange(4)), opt, sched, n, 100 + n) is None
    with pytest.raises(FloatingPointError, match="non-finite loss nan on task 'mnli' at step 103"):
        steps.flush()


def test_the_encoder_traces_as_one_graph_with_the_lean_steps_mask(train_split, trainable,
                                                                   tokenizer):
    """``compile: true`` (and CUDA graphs, which torch.compile's reduce-overhead mode
    captures) pay off only when the encoder is one graph: no graph break in HF's code
    for the mask xstilts passes, at a bucket's static shape."""
    model, _, _ = trainable("mnli", "lean", train_split("mnli"), CPU, total=1)
    ids = torch.randint(5, tokenizer.vocab_size, (4, 2 * BUCKET))
    mask = (torch.arange(2 * BUCKET) < torch.tensor([[9], [32], [17], [3]])).long()
    explained = torch._dynamo.explain(model.encoder)(input_ids=ids,
                                                      attention_mask=model._mask(mask))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_tagging_loss_is_the_mean_over_labelled_positions_and_zero_without_any():
    from trainables.model import task_loss

    logits = torch.randn(2, 5, 4, requires_grad=True)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 1], labels[0, 3], labels[1, 2] = 2, 0, 3
    loss = task_loss("tagging", logits, {"labels": labels})
    picked = torch.stack([logits[0, 1], logits[0, 3], logits[1, 2]])
    expected = torch.nn.functional.cross_entropy(picked, torch.tensor([2, 0, 3]))
    assert torch.allclose(loss, expected)
    # every word cut by max_length: no loss and no gradient, rather than NaN
    none = task_loss("tagging", logits, {"labels": torch.full((2, 5), IGNORE_INDEX)})
    none.backward()
    assert none.item() == 0.0 and torch.count_nonzero(logits.grad) == 0
