"""Checks before launch: can every task and model of a run be trained and loaded here?

A sweep that would fail in every trial should fail once, before anything
starts, with one message that says what is missing and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from spaces.models import EMBEDDED_TINY
from spaces.tasks import TaskSpec, get_task
from trainables.data import DATA_DIR_ENV, files_env, files_template, is_uri, mirror_file
from trainables.storage import fail_fast

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def preflight(tasks: Iterable[str], checkpoints: Iterable[str]) -> list[str]:
    """Problems that would make the run fail; empty when it can start."""
    problems: list[str] = []
    datasets_needed: list[str] = []
    root = os.environ.get(DATA_DIR_ENV)
    if root and not os.path.isabs(root):
        problems.append(f"{DATA_DIR_ENV}={root!r} is a relative path, and trials resolve it "
                        "against their own working directory (Ray Train moves each worker "
                        f"into its trial folder); set it to {os.path.abspath(root)!r} (on a "
                        "cluster: a folder every node mounts)")
    names = [n for name in tasks for n in (name, get_task(name).train_task) if n]
    for name in dict.fromkeys(names):  # XQuAD and MLQA need SQuAD's training set
        task = get_task(name)
        split = next(iter(task.source.splits), None)
        # a retrieval task's files pair each other language with English: any one will do
        langs = task.languages[1:] if task.format == "retrieval" else [task.train_language]
        mirrors = [mirror_file(task, split, lang) for lang in langs] if split else [None]
        mirror = next((m for m in mirrors if m is not None and m.exists()), mirrors[0])
        if mirror is not None:  # XSTILTS_DATA_DIR: a local mirror stands in for hub and files
            if not mirror.exists():
                problems.append(f"task {name!r}: {DATA_DIR_ENV} is set and {str(mirror)!r} does "
                                f"not exist; add the file or unset {DATA_DIR_ENV}")
        elif task.source.kind == "hf":
            datasets_needed.append(task.source.path)
        elif task.source.kind == "files":
            problems += _files_problems(task)
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


def _files_problems(task: TaskSpec) -> list[str]:
    """What stops trials from reading a ``files`` task's training file, checked as the
    nodes will read it: a URI through its pyarrow filesystem, a local path on this disk."""
    src = task.source
    template = files_template(task)
    first = template.format(split=src.splits["train"], lang=task.train_language)
    if is_uri(first):
        return _uri_problems(task, first)
    if not os.path.isabs(first):
        return [f"task {task.name!r} reads files at the relative path {template!r}, and trials "
                "resolve it against their own working directory (Ray Train moves each worker "
                "into its trial folder; other nodes have other disks), where it does not exist; "
                f"set {files_env(task)} to an absolute path template on a disk every node mounts "
                f"or a storage URI (s3://BUCKET/{template})"]
    if not Path(first).exists():
        return [f"task {task.name!r} reads local files and {first!r} does not exist; put the "
                f"files at {template!r} (split, lang filled in) on a disk every node mounts, or "
                f"set {files_env(task)} to a storage URI (s3://BUCKET/...)"]
    return []


def _uri_problems(task: TaskSpec, uri: str) -> list[str]:
    """Whether the file at ``uri`` is there, asked through the filesystem trials read it with."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid: an unknown scheme
        return [f"task {task.name!r} reads {uri!r}, which is not a URI pyarrow can open ({exc}); "
                "give s3://BUCKET/KEY, gs://BUCKET/KEY or another pyarrow filesystem URI, with "
                "the endpoint, region and credentials in the environment"]
    try:
        info = fail_fast(fs).get_file_info(path)
    except OSError as exc:
        return [f"task {task.name!r}: could not reach {uri!r} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}); this machine and every node must reach it "
                "(endpoint, network, credentials from the environment or the instance role)"]
    if info.type == pafs.FileType.File:
        return []
    what = "does not exist" if info.type == pafs.FileType.NotFound else "is a folder, not a file"
    return [f"task {task.name!r} reads its training file (language {task.train_language!r}) "
            f"from {uri!r}, and it {what}; upload the JSON Lines (or .parquet) files there as "
            f"{files_template(task)!r} with split and lang filled in, or correct "
            f"{files_env(task)}"]


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
