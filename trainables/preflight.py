"""Checks before launch: can every task and model of a run be trained and loaded here?

A sweep that would fail in every trial should fail once, before anything
starts, with one message that says what is missing and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from spaces.models import EMBEDDED_TINY
from spaces.tasks import get_task
from trainables.data import DATA_DIR_ENV, mirror_file

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def preflight(tasks: Iterable[str], checkpoints: Iterable[str]) -> list[str]:
    """Problems that would make the run fail; empty when it can start."""
    problems: list[str] = []
    datasets_needed: list[str] = []
    names = [n for name in tasks for n in (name, get_task(name).train_task) if n]
    for name in dict.fromkeys(names):  # XQuAD and MLQA need SQuAD's training set
        task = get_task(name)
        split = next(iter(task.source.splits), None)
        mirror = mirror_file(task, split, task.train_language) if split else None
        if mirror is not None:  # XSTILTS_DATA_DIR: a local mirror stands in for hub and files
            if not mirror.exists():
                problems.append(f"task {name!r}: {DATA_DIR_ENV} is set and {str(mirror)!r} does "
                                f"not exist; add the file or unset {DATA_DIR_ENV}")
        elif task.source.kind == "hf":
            datasets_needed.append(task.source.path)
        elif task.source.kind == "files":
            first = task.source.path.format(split=task.source.splits["train"], lang=task.train_language)
            if not Path(first).exists():
                problems.append(f"task {name!r} reads local files and {first!r} does not exist; "
                                f"put the files at {task.source.path!r} (split, lang filled in)")
    models_needed = [c for c in dict.fromkeys(checkpoints)
                     if c != EMBEDDED_TINY and not Path(c).is_dir()]
    if (datasets_needed or models_needed) and not any(os.environ.get(v) for v in _OFFLINE_VARS):
        reason = _hub_unreachable(datasets_needed[:1], models_needed[:1])
        if reason:
            need = ", ".join([*(f"dataset {d}" for d in dict.fromkeys(datasets_needed)),
                              *(f"model {m}" for m in models_needed)])
            problems.append(
                f"the Hugging Face hub is unreachable ({reason}) and this run needs it for: {need}. "
                "Download them where the hub is reachable, copy the cache here and set "
                "HF_HUB_OFFLINE=1 (HF_HOME pointing at the cache), or use the demo preset")
    return problems


def _hub_unreachable(datasets: list[str], models: list[str]) -> str | None:
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        if datasets:
            api.dataset_info(datasets[0], timeout=10)
        if models:
            api.model_info(models[0], timeout=10)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the hub is the answer
        if "404" in str(exc) or "not found" in str(exc).lower():
            return None  # reachable; a wrong id fails in the trial with its own message
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None
