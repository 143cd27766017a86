"""A shared XLM-R encoder with one head per task, its class chosen by format.

Heads follow Hugging Face's task models (``XLMRobertaForSequenceClassification``,
``...ForMultipleChoice``, ``...ForQuestionAnswering``, ``...ForTokenClassification``),
so a head's outputs and loss mean what HF users expect. Retrieval targets have
no head: they are scored on mean-pooled hidden states of one encoder layer.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from spaces.tasks import TaskSpec
from trainables.encoding import IGNORE_INDEX


class ClassificationHead(nn.Module):
    """RoBERTa's: dense + tanh on the <s> state, then a projection to labels."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(states[:, 0])))
        return self.out(self.dropout(x))


class ChoiceHead(nn.Module):
    """One score per (context, choice) encoding; softmax over choices happens in the loss."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states[:, 0])).squeeze(-1)


class SpanHead(nn.Module):
    """Start and end logits for every token: ``[batch, seq, 2]``."""

    def __init__(self, hidden: int):
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(states)


class TagHead(nn.Module):
    """Tag logits for every token: ``[batch, seq, tags]``."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states))


def make_head(task: TaskSpec, hidden: int, num_labels: int, dropout: float) -> nn.Module:
    if task.format == "multiple_choice":
        return ChoiceHead(hidden, dropout)
    if task.format == "span_qa":
        return SpanHead(hidden)
    if task.format == "tagging":
        return TagHead(hidden, num_labels, dropout)
    if task.format == "classification":
        return ClassificationHead(hidden, num_labels, dropout)
    raise ValueError(f"task {task.name!r}: format {task.format!r} has no head")


class MultiTaskModel(nn.Module):
    """``tasks`` get one head each (retrieval tasks none); ``num_labels`` overrides a
    task's label count (CCG's tag vocabulary comes from its training file)."""

    def __init__(self, encoder: nn.Module, tasks: list[TaskSpec],
                 num_labels: Mapping[str, int] | None = None):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        dropout = encoder.config.hidden_dropout_prob
        sizes = dict(num_labels or {})
        headed = [t for t in tasks if t.format != "retrieval"]
        self.formats = {t.name: t.format for t in headed}
        self.heads = nn.ModuleDict({
            t.name: make_head(t, hidden, sizes.get(t.name, t.num_labels), dropout) for t in headed})

    def forward(self, task: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits: ``[batch, labels]`` (classification), ``[batch, choices]`` (multiple
        choice), ``[batch, seq, 2]`` start/end (span QA), ``[batch, seq, tags]`` (tagging)."""
        shape = input_ids.shape
        choice = self.formats[task] == "multiple_choice"
        if choice:
            input_ids = input_ids.reshape(-1, shape[-1])
            attention_mask = attention_mask.reshape(-1, shape[-1])
        states = self.encoder(input_ids=input_ids,
                              attention_mask=self._mask(attention_mask)).last_hidden_state
        logits = self.heads[task](states)
        return logits.view(shape[0], shape[1]) if choice else logits

    def _mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mask as the encoder's attention takes it. For SDPA, the boolean 4-D mask
        HF would build (True: attend), made here: from a 2-D mask HF first asks whether
        any token is padding (``mask.all()``), which makes the host wait for the GPU on
        every forward."""
        if self.encoder.config._attn_implementation != "sdpa":
            return attention_mask
        return attention_mask.bool()[:, None, None, :]

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
        """Sentence embeddings ``[batch, hidden]``: the hidden states of encoder layer
        ``layer`` (1-based; 0 = the middle one) averaged over the real tokens, as
        XTREME's ``mean_pool_embedding``."""
        layers = self.encoder.config.num_hidden_layers
        if layer > layers:
            raise ValueError(f"retrieval_layer={layer}, but the encoder has {layers} layers; "
                             f"choose 1..{layers}, or 0 for the middle one")
        out = self.encoder(input_ids=input_ids, attention_mask=self._mask(attention_mask),
                           output_hidden_states=True)
        states = out.hidden_states[layer or max(1, layers // 2)].float()
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def task_loss(fmt: str, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The training loss of one batch, in fp32, as HF's task models compute it.

    Span QA: the mean of start and end cross-entropy (an answer outside the
    window points at the CLS token), over the real tokens: padding is no candidate
    answer, so how far a batch is padded does not change its loss. Tagging: cross-entropy over the labelled
    positions (first sub-token of each word).
    """
    logits = logits.float()
    if fmt == "span_qa":
        pad = batch["attention_mask"].unsqueeze(-1) == 0
        start, end = logits.masked_fill(pad, torch.finfo(logits.dtype).min).unbind(-1)
        return (F.cross_entropy(start, batch["start_positions"])
                + F.cross_entropy(end, batch["end_positions"])) / 2
    if fmt == "tagging":
        # the mean over labelled positions, written so that a batch with none (every word
        # truncated) gives 0, not NaN, without asking the device whether it has any
        labels = batch["labels"].flatten()
        total = F.cross_entropy(logits.flatten(0, 1), labels, ignore_index=IGNORE_INDEX,
                                reduction="sum")
        return total / (labels != IGNORE_INDEX).sum().clamp(min=1)
    return F.cross_entropy(logits, batch["labels"])
