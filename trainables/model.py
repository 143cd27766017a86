"""A shared XLM-R encoder with one head per task, its class chosen by format."""

from __future__ import annotations

import torch
from torch import nn

from spaces.tasks import TaskSpec


class ClassificationHead(nn.Module):
    """RoBERTa's: dense + tanh on the <s> state, then a projection to labels."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(first)))
        return self.out(self.dropout(x))


class ChoiceHead(nn.Module):
    """One score per (context, choice) encoding; softmax over choices happens in the loss."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(first)).squeeze(-1)


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, tasks: list[TaskSpec]):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        dropout = encoder.config.hidden_dropout_prob
        self.formats = {t.name: t.format for t in tasks}
        self.heads = nn.ModuleDict({
            t.name: ChoiceHead(hidden, dropout) if t.format == "multiple_choice"
            else ClassificationHead(hidden, t.num_labels, dropout)
            for t in tasks
        })

    def forward(self, task: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, labels) — or (batch, choices) for multiple choice."""
        shape = input_ids.shape
        if self.formats[task] == "multiple_choice":
            input_ids = input_ids.reshape(-1, shape[-1])
            attention_mask = attention_mask.reshape(-1, shape[-1])
        first = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        logits = self.heads[task](first)
        return logits.view(shape[0], shape[1]) if self.formats[task] == "multiple_choice" else logits
