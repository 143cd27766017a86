"""The token cache: each split encoded once per node, memory-mapped, rebuilt when damaged.

Every test reads the hub-schema fixtures (``tests/fixtures/xtreme``) with the tiny
tokenizer, into a token cache of its own (``XSTILTS_CACHE`` under ``tmp_path``).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os

import numpy as np
import pytest
import torch

from spaces.config import TrialConfig
from spaces.tasks import get_task
from trainables import token_cache
from trainables.data import Cursor, load_rows
from trainables.encoding import encode, tag_vocabulary
from trainables.step import TrainStep
from trainables.token_cache import encoded_split

CPU = torch.device("cpu")
#: one task per trainable format
FORMATS = {"mnli": "classification", "hellaswag": "multiple_choice", "squad": "span_qa",
           "ccg": "tagging"}


@pytest.fixture
def cache(tmp_path, monkeypatch, embedded_cache):
    """A token cache of this test's own (the tiny model stays in the session's cache)."""
    root = tmp_path / "cache"
    (root).mkdir()
    for built in embedded_cache.iterdir():  # the tiny model and demo suite, not rebuilt
        if built.is_dir() and built.name != "tokens":
            os.symlink(built, root / built.name)
    monkeypatch.setenv("XSTILTS_CACHE", str(root))
    return root


def _entries(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "tokens").glob("*/*")
                  if p.is_dir() and not p.name.startswith("."))


def _digest(split) -> str:
    col = getattr(split, "seqs", None) or split.ids
    return hashlib.sha256(col.values.tobytes() + col.offsets.tobytes()).hexdigest()


# -- concurrency ---------------------------------------------------------------------------------
def _encode_in_child(cache_dir: str, mirror: str, barrier, out) -> None:
    os.environ["XSTILTS_CACHE"] = cache_dir
    os.environ["XSTILTS_DATA_DIR"] = mirror
    from transformers import AutoTokenizer

    from spaces.models import EMBEDDED_TINY
    from trainables.embedded_default import resolve_checkpoint

    built = []

    class Count(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("encoded "):
                built.append(record.getMessage())

    log = logging.getLogger("xstilts.cache")
    log.addHandler(Count())
    log.setLevel(logging.INFO)
    tok = AutoTokenizer.from_pretrained(resolve_checkpoint(EMBEDDED_TINY))
    barrier.wait()  # both ask for the key at the same moment
    split = encoded_split(get_task("mnli"), "train", "en", tok, max_length=128)
    out.put((len(built), _digest(split), split.labels.tolist()))


def test_two_processes_asking_at_once_encode_once_and_read_identical_arrays(cache, mirror,
                                                                             tokenizer):
    tokenizer("warm")  # the tiny model exists before the children look for it
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_encode_in_child, args=(str(cache), str(mirror), barrier, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(n for n, _, _ in results) == [0, 1], "exactly one process encodes"
    assert results[0][1:] == results[1][1:], "both read the same ids and labels"
    assert len(_entries(cache)) == 1
    leftovers = [p.name for p in (cache / "tokens" / "mnli").iterdir()
                 if p.name.startswith(".")]
    assert not leftovers, f"temporary folders left behind: {leftovers}"


# -- damage ------------------------------------------------------------------------------------
def test_a_truncated_cache_file_is_rebuilt_not_read(cache, mirror, tokenizer, caplog):
    task = get_task("squad")
    first = encoded_split(task, "train", "en", tokenizer, max_length=128, evaluation=False)
    want = (_digest(first), first.start_positions.tolist())
    del first
    [entry] = _entries(cache)
    rows = cache / entry / "rows.arrow"
    rows.write_bytes(rows.read_bytes()[: rows.stat().st_size // 2])  # a kill mid-copy
    with caplog.at_level(logging.WARNING, logger="xstilts.cache"):
        again = encoded_split(task, "train", "en", tokenizer, max_length=128, evaluation=False)
    assert "damaged" in caplog.text
    assert (_digest(again), again.start_positions.tolist()) == want
    assert _entries(cache) == [entry]


def test_an_entry_without_its_metadata_is_rebuilt(cache, mirror, tokenizer):
    task = get_task("mnli")
    first = _digest(encoded_split(task, "train", "en", tokenizer, max_length=64))
    [entry] = _entries(cache)
    (cache / entry / "meta.json").unlink()  # a build killed before it finished
    assert _digest(encoded_split(task, "train", "en", tokenizer, max_length=64)) == first


# -- the key -----------------------------------------------------------------------------------
def test_the_key_follows_tokenizer_max_length_and_encoding_version(cache, mirror, tokenizer,
                                                                   monkeypatch):
    task = get_task("mnli")
    encoded_split(task, "train", "en", tokenizer, max_length=128)
    encoded_split(task, "train", "en", tokenizer, max_length=128)
    assert len(_entries(cache)) == 1, "the same key is read, not built again"
    encoded_split(task, "train", "en", tokenizer, max_length=64)
    assert len(_entries(cache)) == 2, "max_length is part of the key"
    monkeypatch.setattr(token_cache, "ENCODING_VERSION", token_cache.ENCODING_VERSION + 1)
    encoded_split(task, "train", "en", tokenizer, max_length=64)
    assert len(_entries(cache)) == 3, "the encoding version is part of the key"
    other = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    other.add_tokens(["zzzunseen"])  # another vocabulary
    assert token_cache.tokenizer_fingerprint(other) != token_cache.tokenizer_fingerprint(tokenizer)
    encoded_split(task, "train", "en", other, max_length=64)
    assert len(_entries(cache)) == 4, "the tokenizer is part of the key"


def test_a_warm_split_reads_no_source_rows(cache, mirror, tokenizer, monkeypatch):
    task = get_task("hellaswag")
    cold = encoded_split(task, "train", "en", tokenizer, max_length=128)
    import trainables.data as data

    def fail(*a, **k):
        raise AssertionError("a warm cache must not load the source")

    monkeypatch.setattr(data, "load_rows", fail)
    warm = encoded_split(task, "train", "en", tokenizer, max_length=128)
    assert _digest(warm) == _digest(cold) and warm.choices == cold.choices == 4


# -- same losses with and without the cache ----------------------------------------------------
def _losses(trainable, name: str, split, order) -> list[float]:
    model, opt, sched = trainable(name, "lean", split, CPU, total=len(order),
                                  cfg=TrialConfig(learning_rate=1e-3, warmup_ratio=0.1))
    torch.manual_seed(1)  # dropout on: the same masks need the same tensors
    steps = TrainStep(model, model, CPU, lean=True)
    for n, index in enumerate(order, 1):
        steps(name, steps.batch(split, index), opt, sched, n, n - 1)
    return steps.flush()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_losses_are_the_same_with_and_without_the_cache(name, cache, mirror, tokenizer,
                                                        trainable):
    task = get_task(name)
    assert task.format == FORMATS[name]
    rows = load_rows(task, "train", "en")
    names = tag_vocabulary(task, rows) if task.format == "tagging" else None
    memory = encode(task, rows, tokenizer, max_length=128, label_names=names, evaluation=False)
    mapped = encoded_split(task, "train", "en", tokenizer, max_length=128, evaluation=False)
    assert np.array_equal(memory.lengths(), mapped.lengths())
    cursor = Cursor(name, len(memory), seed=0, global_batch=4, lengths=memory.lengths(), group=4)
    order = [cursor.next(0, 1) for _ in range(12)]
    without, with_cache = (_losses(trainable, name, s, order) for s in (memory, mapped))
    assert len(without) == 12 and without == with_cache, f"{name}: {without} vs {with_cache}"
