"""Fixtures of the trainables tests: the fixture mirror of the hub, the tiny tokenizer,
English training splits read from the mirror, and a one-task tiny model to train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spaces.config import TrialConfig
from spaces.models import EMBEDDED_TINY
from spaces.tasks import get_task
from trainables.data import DATA_DIR_ENV, load_rows
from trainables.embedded_default import resolve_checkpoint
from trainables.encoding import encode, tag_vocabulary
from trainables.model import MultiTaskModel
from trainables.step import attention_implementation, make_optimizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


@pytest.fixture
def mirror(monkeypatch):
    """Every task reads the rows of ``tests/fixtures/xtreme`` (``XSTILTS_DATA_DIR``)."""
    import datasets

    datasets.disable_progress_bars()
    monkeypatch.setenv(DATA_DIR_ENV, str(FIXTURES))
    return FIXTURES


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_checkpoint(EMBEDDED_TINY))


@pytest.fixture
def train_split(mirror, tokenizer):
    """``train_split(name)``: the task's English training split from the mirror, encoded."""

    def split(name: str):
        task = get_task(name)
        rows = load_rows(task, "train", task.train_language)
        names = tag_vocabulary(task, rows) if task.format == "tagging" else None
        return encode(task, rows, tokenizer, max_length=128, label_names=names)

    return split


@pytest.fixture
def trainable():
    """``trainable(name, kind, split, device, total=…)``: see ``_tiny_trainable``."""
    return _tiny_trainable


def _tiny_trainable(name: str, kind: str, split, device: torch.device, *, total: int,
                    cfg: TrialConfig | None = None, **encoder_kwargs):
    """The tiny encoder with ``name``'s head on ``device``, loaded for the ``kind`` of step
    (lean: SDPA, plain: eager), its AdamW and schedule over ``total`` steps: (model, opt,
    sched). Heads are drawn from seed 0."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(resolve_checkpoint(EMBEDDED_TINY), add_pooling_layer=False,
                                        attn_implementation=attention_implementation(kind),
                                        **encoder_kwargs)
    task = get_task(name)
    labels = {name: len(split.label_names)} if task.format == "tagging" else None
    torch.manual_seed(0)
    model = MultiTaskModel(encoder, [task], num_labels=labels).to(device)
    opt, sched = make_optimizer(list(model.parameters()), cfg or TrialConfig(), total, device)
    model.train()
    return model, opt, sched
