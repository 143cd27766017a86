"""Data at the paper's scale: what a trial pays before step 1, before and after a change.

Writes synthetic corpora of the paper's sizes in the hub's schemas to a local
mirror (once; reused while its manifest matches): ~1.78M rows of pseudo-words
made of the tiny tokenizer's pieces (about 1.35 tokens a word, as XLM-R splits
English) at the real tasks' lengths (MNLI premise ~20 words, SQuAD paragraphs
~120 with the answer inside, HellaSwag 4 endings of ~20, CCG ~24 words with
400 CCG-like supertags, ...), seeded. Then, for the paper-base trial on the
tiny model (the nine intermediate tasks, XNLI as target, all 15 languages
scored; max_length 256, the preset's: nothing here runs the model, whose
positions stop at 130), it runs in a new process each:

- ``load_trial_data(cfg, tokenizer)``: seconds until the data is ready, first
  with a fresh token cache (``$XSTILTS_CACHE``, trial 1) and again in a new
  process (trial 2, the cache as trial 1 left it); then what the loop still
  does before and at its first steps (the cursors' ``lengths()``, each split's
  first batch, which builds its device columns);
- the memory of that worker, sampled from ``/proc/<pid>/smaps_rollup`` by this
  script (peak RSS is the kernel's ``VmHWM``, exact; USS, anonymous and shared
  are the peaks of samples every 0.5 s and of a reading when the data is ready):
  USS = Private_Clean + Private_Dirty, anonymous = the heap, file-backed = RSS -
  anonymous (libraries and memory-mapped data: page cache other processes can
  share), shared = Shared_Clean + Shared_Dirty (pages another process maps
  too; a file page only this process maps counts as Private_Clean, so USS
  holds memory-mapped data too, and the anonymous row is the private heap);
- host milliseconds per training step of each format at batch 32: draw a batch
  with ``trainables.data.Cursor`` (grouped by length, as the loop does) and
  build it with the split's ``device_batch(index, cpu)`` (the lean step's
  batch): the median of ``--steps`` steps after a warm-up, on ``--threads``
  torch threads (the median and one thread, as other work on the machine
  stretches some steps), averaged over the format's tasks;
- the token cache's size on disk.

The same children run against a checkout of the code *before* the change
(``--before DIR``: that checkout first on ``sys.path``; the child checks that
``trainables`` comes from it). A watchdog kills a child whose process tree
passes ``--mem-limit-gib`` of RSS and reports it as "> N GiB (killed at T s)".
The datasets cache (``datasets``' Arrow copy of the JSONL files) is filled
once beforehand by its own child, timed on its own line, and shared by every
run: what is compared is the token path, on a node where ``xstilts prepare``
has fetched the datasets.

    python benchmarks/paper_scale.py --skip-before --scale 0.01     # quick, small corpora
    git worktree add /tmp/xstilts-before f08d494                     # once: the code before
    python benchmarks/paper_scale.py --before /tmp/xstilts-before --json out.json

CPU only; not part of the test command. Timings share the machine's cores with
whatever else runs there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3
BENCH_HOME = Path.home() / ".cache" / "xstilts-bench"
MIRROR_VERSION = 1

# -- the corpora ---------------------------------------------------------------------------
#: rows per task and split (our split names) at scale 1: the paper's training sets (Phang
#: et al. 2020, Table 1) and the hub's dev/test sizes; XNLI's dev and test are per language
ROWS: dict[str, dict[str, int]] = {
    "mnli": {"train": 392_702, "dev": 9_815},
    "qqp": {"train": 363_846, "dev": 40_430},
    "anli": {"train": 162_865, "dev": 3_200, "test": 3_200},
    "squad": {"train": 87_599, "dev": 10_570},
    "sst2": {"train": 67_349, "dev": 872},
    "hellaswag": {"train": 39_905, "dev": 10_042},
    "ccg": {"train": 38_015, "dev": 1_913},
    "cosmosqa": {"train": 25_262, "dev": 2_985},
    "commonsenseqa": {"train": 9_741, "dev": 1_221},
    "xnli": {"train": 392_702, "dev": 2_490, "test": 5_010},
}
INTERMEDIATE = ("anli", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp", "squad",
                "sst2")
TARGET = "xnli"
#: rows a file keeps at least, however small the scale (a batch of 32 and some)
MIN_ROWS = 64
CHUNK = 20_000


class Words:
    """Pseudo-words the tiny tokenizer splits like XLM-R splits English (about 1.35
    tokens a word: 70 % one piece, 25 % two, 5 % three), drawn Zipf-like, and the
    lengths and texts of a field made of them."""

    SHARES = {1: 0.70, 2: 0.25, 3: 0.05}

    def __init__(self, tokenizer, seed: int = 0):
        vocab = tokenizer.get_vocab()
        starts = sorted(w[1:] for w in vocab if w.startswith("\u2581") and len(w) > 1)
        tails = sorted(w for w in vocab if not w.startswith(("\u2581", "<")) and len(w) > 1)
        rng = np.random.default_rng(seed)
        candidates = sorted(set(starts + [a + b for a in starts
                                          for b in rng.choice(tails, 5, replace=False)]))
        pieces = [len(x) for x in tokenizer(candidates, add_special_tokens=False)["input_ids"]]
        words, weights = [], []
        for n, share in self.SHARES.items():
            group = [w for w, k in zip(candidates, pieces) if k == n]
            rng.shuffle(group)
            zipf = 1.0 / np.arange(10, 10 + len(group))
            words += group
            weights += list(share * zipf / zipf.sum())
        self.words = np.asarray(words, dtype=object)
        self.p = np.asarray(weights) / np.sum(weights)
        self.tokens_per_word = sum(self.SHARES[n] * n for n in self.SHARES)

    def draw(self, rng: np.random.Generator, count: int) -> list[str]:
        return self.words[rng.choice(len(self.words), size=count, p=self.p)].tolist()

    @staticmethod
    def lengths(rng: np.random.Generator, n: int, mean: float, *, shape: float = 4.0,
                low: int = 1) -> np.ndarray:
        """Word counts of ``n`` texts: gamma-distributed around ``mean``, at least ``low``,
        at most four times the mean."""
        x = rng.gamma(shape, mean / shape, size=n)
        return np.clip(np.rint(x), low, max(low, int(4 * mean))).astype(np.int64)

    def lists(self, rng: np.random.Generator, lengths: np.ndarray) -> list[list[str]]:
        flat = self.draw(rng, int(lengths.sum()))
        ends = np.cumsum(lengths).tolist()
        return [flat[a:b] for a, b in zip([0] + ends[:-1], ends)]

    def texts(self, rng: np.random.Generator, n: int, mean: float, **kw) -> list[str]:
        return [" ".join(ws) for ws in self.lists(rng, self.lengths(rng, n, mean, **kw))]


def _ids(rng: np.random.Generator, n: int) -> list[bytes]:
    raw = rng.bytes(16 * n)
    return [raw[i:i + 16] for i in range(0, 16 * n, 16)]


def _hex(rng: np.random.Generator, n: int, chars: int) -> list[str]:
    return [b.hex()[:chars] for b in _ids(rng, n)]


def _nli(w: Words, rng, n: int, start: int, premise: float = 20.0) -> list[dict]:
    a, b = w.texts(rng, n, premise), w.texts(rng, n, 10.0, low=2)
    y = rng.integers(0, 3, n).tolist()
    return [{"premise": p, "hypothesis": h, "label": c, "idx": start + i}
            for i, (p, h, c) in enumerate(zip(a, b, y))]


def _xnli(w: Words, rng, n: int, start: int) -> list[dict]:
    return [{k: r[k] for k in ("premise", "hypothesis", "label")} for r in _nli(w, rng, n, start)]


def _anli(w: Words, rng, n: int, start: int) -> list[dict]:
    ids = [str(uuid.UUID(bytes=b)) for b in _ids(rng, n)]
    return [{"uid": u, **{k: r[k] for k in ("premise", "hypothesis", "label")}, "reason": ""}
            for u, r in zip(ids, _nli(w, rng, n, start, premise=55.0))]


def _qqp(w: Words, rng, n: int, start: int) -> list[dict]:
    a, b = w.texts(rng, n, 11.0, low=2), w.texts(rng, n, 11.0, low=2)
    y = rng.integers(0, 2, n).tolist()
    return [{"question1": p, "question2": q, "label": c, "idx": start + i}
            for i, (p, q, c) in enumerate(zip(a, b, y))]


def _sst2(w: Words, rng, n: int, start: int) -> list[dict]:
    y = rng.integers(0, 2, n).tolist()
    return [{"sentence": s + " ", "label": c, "idx": start + i}
            for i, (s, c) in enumerate(zip(w.texts(rng, n, 10.0, shape=2.0), y))]


def _squad(w: Words, rng, n: int, start: int, answers: int = 1) -> list[dict]:
    # about 4.6 questions a paragraph, as in SQuAD v1.1 (87.6k questions, 19k paragraphs)
    per = rng.integers(1, 9, size=n)
    per = per[:int(np.searchsorted(np.cumsum(per), n)) + 1]
    paragraphs = w.lists(rng, Words.lengths(rng, len(per), 120.0, shape=6.0, low=30))
    titles = ["_".join(t) for t in w.lists(rng, rng.integers(1, 4, len(per)))]
    questions = w.texts(rng, n, 10.0, low=3)
    ids = _hex(rng, n, 24)
    rows = []
    for words, title, count in zip(paragraphs, titles, per.tolist()):
        context = " ".join(words)
        starts = np.concatenate([[0], np.cumsum([len(x) + 1 for x in words])])
        for _ in range(count):
            if len(rows) == n:
                break
            span = int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15])) + 1
            k = int(rng.integers(0, len(words) - span + 1))
            text = " ".join(words[k:k + span])
            rows.append({"id": ids[len(rows)], "title": title, "context": context,
                         "question": questions[len(rows)],
                         "answers": {"text": [text] * answers,
                                     "answer_start": [int(starts[k])] * answers}})
    return rows


def _hellaswag(w: Words, rng, n: int, start: int, split: str = "train") -> list[dict]:
    ctx_a, ctx_b = w.texts(rng, n, 27.0), w.texts(rng, n, 3.0)
    labels = w.texts(rng, n, 2.0, shape=2.0)
    endings = w.lists(rng, Words.lengths(rng, 4 * n, 20.0, low=2))
    y = rng.integers(0, 4, n).tolist()
    vids = _hex(rng, n, 11)
    return [{"ind": start + i, "activity_label": labels[i], "ctx_a": ctx_a[i], "ctx_b": ctx_b[i],
             "ctx": f"{ctx_a[i]} {ctx_b[i]}",
             "endings": [" ".join(e) for e in endings[4 * i:4 * i + 4]],
             "source_id": f"activitynet~v_{vids[i]}", "split": split,
             "split_type": "indomain", "label": str(y[i])} for i in range(n)]


def _hellaswag_dev(w: Words, rng, n: int, start: int) -> list[dict]:
    return _hellaswag(w, rng, n, start, split="val")


def _cosmosqa(w: Words, rng, n: int, start: int) -> list[dict]:
    ctx, q = w.texts(rng, n, 70.0, shape=5.0), w.texts(rng, n, 9.0, low=3)
    answers = w.texts(rng, 4 * n, 8.0)
    y = rng.integers(0, 4, n).tolist()
    ids = _hex(rng, n, 32)
    return [{"id": ids[i], "context": ctx[i], "question": q[i],
             **{f"answer{j}": answers[4 * i + j] for j in range(4)}, "label": y[i]}
            for i in range(n)]


def _commonsenseqa(w: Words, rng, n: int, start: int) -> list[dict]:
    q, concept = w.texts(rng, n, 13.0, low=4), w.draw(rng, n)
    choices = [" ".join(c) for c in w.lists(rng, rng.integers(1, 4, 5 * n))]
    y = rng.integers(0, 5, n).tolist()
    ids = _hex(rng, n, 32)
    return [{"id": ids[i], "question": q[i], "question_concept": concept[i],
             "choices": {"label": list("ABCDE"), "text": choices[5 * i:5 * i + 5]},
             "answerKey": "ABCDE"[y[i]]} for i in range(n)]


def ccg_tags(count: int = 400, seed: int = 0) -> list[str]:
    """``count`` CCG-like supertags (atoms, X/Y, X\\Y and nested forms), most frequent first."""
    rng = np.random.default_rng(seed)
    atoms = ["N", "NP", "NP[nb]", "N[num]", "PP", "S[dcl]", "S[b]", "S[ng]", "S[pss]", "S[pt]",
             "S[to]", "S[adj]", "S[em]", "S[q]", "S[wq]", "S"]
    tags = [".", ",", "conj", ":", ";", "LRB", "RRB"] + atoms
    verbs = [f"({s}\\NP)" for s in atoms if s.startswith("S")]
    parts = atoms + verbs + ["((S\\NP)\\(S\\NP))", "(N/N)", "(NP\\NP)", "(S/S)"]
    while len(tags) < count:
        a, b = rng.choice(parts, 2)
        tag = f"{a}{'/' if rng.random() < 0.6 else chr(92)}{b}"
        if rng.random() < 0.3:
            tag = f"({tag}){'/' if rng.random() < 0.7 else chr(92)}{rng.choice(atoms[:6])}"
        if tag not in tags:
            tags.append(tag)
    return tags


_CCG_TAGS = ccg_tags()
_CCG_P = 1.0 / np.arange(1, len(_CCG_TAGS) + 1) ** 1.1
_CCG_P /= _CCG_P.sum()


def _ccg(w: Words, rng, n: int, start: int, prefix: str = "train") -> list[dict]:
    lengths = Words.lengths(rng, n, 24.0, shape=3.0, low=3)
    words = w.lists(rng, lengths)
    tags = np.asarray(_CCG_TAGS, dtype=object)[rng.choice(len(_CCG_TAGS), int(lengths.sum()),
                                                          p=_CCG_P)].tolist()
    ends = np.cumsum(lengths).tolist()
    return [{"id": f"{prefix}-{start + i + 1:06d}", "tokens": ws, "tags": tags[a:b]}
            for i, (ws, a, b) in enumerate(zip(words, [0] + ends[:-1], ends))]


def _ccg_dev(w: Words, rng, n: int, start: int) -> list[dict]:
    return _ccg(w, rng, n, start, prefix="dev")


def _squad_dev(w: Words, rng, n: int, start: int) -> list[dict]:
    return _squad(w, rng, n, start, answers=3)


#: (task, split) -> rows builder; a builder's texts follow the hub's schema of that task
BUILDERS: dict[tuple[str, str], Callable[..., list[dict]]] = {
    **{(t, s): b for t, b in (("mnli", _nli), ("qqp", _qqp), ("anli", _anli), ("sst2", _sst2),
                               ("cosmosqa", _cosmosqa), ("commonsenseqa", _commonsenseqa),
                               ("xnli", _xnli))
       for s in ROWS[t]},
    ("squad", "train"): _squad, ("squad", "dev"): _squad_dev,
    ("hellaswag", "train"): _hellaswag, ("hellaswag", "dev"): _hellaswag_dev,
    ("ccg", "train"): _ccg, ("ccg", "dev"): _ccg_dev,
}


def mirror_files(scale: float, min_rows: int = MIN_ROWS) -> list[tuple[str, str, str, int]]:
    """(task, split, language, rows) of every file the mirror holds."""
    from spaces.tasks import get_task

    out = []
    for task, splits in ROWS.items():
        langs = get_task(task).languages
        for split, rows in splits.items():
            n = max(min_rows, round(rows * scale))
            for lang in (langs[:1] if split == "train" else langs):
                out.append((task, split, lang, n))
    return out


def write_mirror(root: Path, tokenizer, *, scale: float = 1.0, seed: int = 0,
                 min_rows: int = MIN_ROWS) -> dict:
    """The mirror at ``root`` (``$XSTILTS_DATA_DIR/<task>/<file split>.<lang>.jsonl``):
    written into a temporary folder renamed into place, or reused where ``root`` holds a
    manifest of the same version, scale, seed and minimum; returns that manifest."""
    from spaces.tasks import get_task

    want = {"version": MIRROR_VERSION, "scale": scale, "seed": seed, "min_rows": min_rows}
    manifest = root / "paper-scale.json"
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if {k: have.get(k) for k in want} == want:
            return {**have, "reused": True}
        raise SystemExit(f"{root} holds a mirror of {have} but this run wants {want}: remove it "
                         "or give another --mirror")
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists, is not empty and holds no paper-scale.json; give an "
                         "empty or new --mirror folder")
    t0 = time.perf_counter()
    words = Words(tokenizer, seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    counts: dict[str, int] = {}
    try:
        for task, split, lang, n in mirror_files(scale, min_rows):
            rng = np.random.default_rng([seed, zlib.crc32(f"{task}/{split}/{lang}".encode())])
            name = f"{get_task(task).source.mirror_split(split)}.{lang}.jsonl"
            (tmp / task).mkdir(exist_ok=True)
            with open(tmp / task / name, "w", encoding="utf-8") as f:
                for start in range(0, n, CHUNK):
                    rows = BUILDERS[task, split](words, rng, min(CHUNK, n - start), start)
                    f.write("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
            counts[f"{task}/{name}"] = n
        out = {**want, "files": counts, "rows": sum(counts.values()),
               "tokens_per_word": round(words.tokens_per_word, 3),
               "seconds": round(time.perf_counter() - t0, 1)}
        (tmp / "paper-scale.json").write_text(json.dumps(out, indent=1))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**out, "reused": False}


# -- one measurement, in a child process -------------------------------------------------------
def trial_config_dict(max_length: int) -> dict:
    """The paper-base trial on the tiny model, XNLI scored in all its languages."""
    from spaces.presets import load_preset
    from spaces.tasks import get_task

    preset = load_preset("paper-base")
    return {**preset.trial, **preset.targets.get(TARGET, {}), "target": TARGET,
            "intermediate_tasks": list(INTERMEDIATE), "model_size": "tiny", "use_gpu": False,
            "max_length": max_length, "eval_languages": list(get_task(TARGET).languages)}


def _rollup(pid: int | str = "self") -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` in bytes (empty where the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    out = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            out[key.strip()] = int(parts[0]) * 1024
    return out


def _status(pid: int | str = "self") -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in
                                                          text.splitlines())
            if k.startswith("Vm") and v.strip().endswith("kB")}


def _memory(roll: dict[str, int]) -> dict[str, int]:
    rss, anon = roll.get("Rss", 0), roll.get("Anonymous", 0)
    return {"rss": rss, "pss": roll.get("Pss", 0),
            "uss": roll.get("Private_Clean", 0) + roll.get("Private_Dirty", 0),
            "shared": roll.get("Shared_Clean", 0) + roll.get("Shared_Dirty", 0),
            "anon": anon, "file": rss - anon}


def child_main(spec_path: str) -> None:
    """Load one trial's data with the code at ``spec["code"]`` and time its steps."""
    spec = json.loads(Path(spec_path).read_text())
    t_start = time.perf_counter()
    phase = Path(spec["phase_file"])
    phase.write_text("import")
    code = str(Path(spec["code"]).resolve())
    sys.path.insert(0, code)
    import spaces
    import trainables

    for module in (spaces, trainables):
        where = str(Path(module.__file__ or "").resolve())
        if not where.startswith(code + os.sep):
            raise SystemExit(f"{module.__name__} comes from {where}, not from {code}: the "
                             "measurement would not run the code it names")
    import datasets
    import torch
    from transformers import AutoTokenizer

    from spaces.config import TrialConfig
    from spaces.tasks import get_task
    from trainables.data import Cursor
    from trainables.trial_data import load_trial_data

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    cfg = TrialConfig.from_dict(spec["config"])
    import_s = time.perf_counter() - t_start

    phase.write_text("load")
    before_load = _memory(_rollup())
    t0 = time.perf_counter()
    data = load_trial_data(cfg, tokenizer)
    ready_s = time.perf_counter() - t0
    report: dict = {"code": code, "trainables": trainables.__file__, "import_s": import_s,
                    "ready_s": ready_s, "ready_since_start_s": time.perf_counter() - t_start,
                    "memory_before_load": before_load,
                    "memory_at_ready": _memory(_rollup()),
                    "vmhwm_at_ready": _status().get("VmHWM", 0)}

    phase.write_text("steps")
    train = {**data.inter_train}
    if data.target_train is not None:
        train[data.target.name] = data.target_train
    evals = {f"{data.target.name}.{lang}": s for lang, s in data.eval_sets.items()}
    if data.en_dev is not None and all(s is not data.en_dev for s in data.eval_sets.values()):
        evals[f"{data.target.name}.en-dev"] = data.en_dev
    splits, steps = {}, {}
    cpu = torch.device("cpu")
    # one intra-op thread: on a busy machine a parallel gather waits for a descheduled
    # thread (a scheduler slice, ~5 ms), which would time the neighbours, not the batch
    torch.set_num_threads(spec["threads"])
    for name, split in train.items():
        t = time.perf_counter()
        lengths = split.lengths()  # the loop's cursors take them before step 1
        lengths_s = time.perf_counter() - t
        cursor = Cursor(name, len(split), seed=cfg.seed, global_batch=cfg.batch_size,
                        lengths=lengths, group=cfg.group_by_length)
        split.device_batch(cursor.next(0, 1), cpu)  # the first batch builds the device columns
        first_s = time.perf_counter() - t - lengths_s
        for _ in range(spec["warmup"]):
            split.device_batch(cursor.next(0, 1), cpu)
        took = np.empty(spec["steps"])
        for i in range(spec["steps"]):
            t = time.perf_counter()
            split.device_batch(cursor.next(0, 1), cpu)
            took[i] = time.perf_counter() - t
        fmt = get_task(name).format
        steps[name] = {"format": fmt, "lengths_s": lengths_s, "first_batch_s": first_s,
                       "ms_per_step": float(np.median(took)) * 1e3,
                       "ms_per_step_mean": float(took.mean()) * 1e3}
        splits[name] = {"role": "train", "format": fmt, "sequences": len(split),
                        "tokens": int(np.sum(lengths))}
    for name, split in evals.items():
        splits[name] = {"role": "eval", "format": get_task(TARGET).format,
                        "sequences": len(split), "tokens": int(np.sum(split.lengths()))}
    phase.write_text("done")
    report.update(steps=steps, splits=splits, memory_at_end=_memory(_rollup()),
                  vmhwm_at_end=_status().get("VmHWM", 0),
                  ru_maxrss_at_end=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    Path(spec["out"]).write_text(json.dumps(report, indent=1))


def prime_main(spec_path: str) -> None:
    """Fill the datasets cache: every split a trial reads, through ``load_rows``."""
    spec = json.loads(Path(spec_path).read_text())
    sys.path.insert(0, spec["code"])
    import datasets

    from spaces.tasks import get_task
    from trainables.data import load_rows

    datasets.disable_progress_bars()
    cfg = spec["config"]
    reads = [(get_task(t), "train", "en") for t in [*cfg["intermediate_tasks"], cfg["target"]]]
    split = cfg.get("eval_split", "dev")  # XNLI has both
    reads += [(get_task(cfg["target"]), split, lang) for lang in cfg["eval_languages"]]
    t0 = time.perf_counter()
    rows = sum(len(load_rows(task, name, lang)) for task, name, lang in reads)
    Path(spec["out"]).write_text(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows,
                                             "files": len(reads)}))


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def run_child(mode: str, spec: dict, *, work: Path, label: str, limit_gib: float,
              timeout_s: float, interval_s: float = 0.5) -> dict:
    """Run ``mode`` (child, prime) of this script on ``spec`` in a new process under a
    memory watchdog; its report with the watchdog's peaks per phase."""
    work.mkdir(parents=True, exist_ok=True)
    out, phase_file = work / f"{label}.json", work / f"{label}.phase"
    out.unlink(missing_ok=True)
    phase_file.write_text("start")
    spec = {**spec, "out": str(out), "phase_file": str(phase_file)}
    (work / f"{label}.spec.json").write_text(json.dumps(spec, indent=1))
    env = {**os.environ, **spec["env"], "PYTHONPATH": spec["code"]}
    log = open(work / f"{label}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), f"--{mode}",
                             str(work / f"{label}.spec.json")], env=env, cwd=spec["code"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    peaks: dict[str, dict[str, int]] = {}
    killed = None
    try:
        while proc.poll() is None:
            pids = _descendants(proc.pid)
            tree_rss = sum(_status(p).get("VmRSS", 0) for p in pids)
            phase = phase_file.read_text().strip() or "start"
            mem = {**_memory(_rollup(proc.pid)), "tree_rss": tree_rss}
            peak = peaks.setdefault(phase, {})
            for k, v in mem.items():
                peak[k] = max(peak.get(k, 0), v)
            elapsed = time.perf_counter() - t0
            if tree_rss > limit_gib * GIB or elapsed > timeout_s:
                why = "memory" if tree_rss > limit_gib * GIB else "timeout"
                killed = {"why": why, "at_s": elapsed, "phase": phase, "tree_rss": tree_rss}
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(interval_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    result = {"label": label, "wall_s": time.perf_counter() - t0, "rc": proc.returncode,
              "killed": killed, "peaks": peaks, "log": str(work / f"{label}.log")}
    if out.exists():
        result.update(json.loads(out.read_text()))
    elif killed is None:
        result["failed"] = (work / f"{label}.log").read_text()[-3000:]
        print(f"{label}: the child failed (rc {proc.returncode}); the end of its log "
              f"{result['log']}:\n{result['failed']}", file=sys.stderr, flush=True)
    return result


def disk_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) \
        if folder.exists() else 0


def measure(code: Path, *, name: str, args, base: dict, work: Path) -> dict:
    """Trial 1 (fresh token cache) and trial 2 (a new process, the cache trial 1 left)."""
    # byte-compiled first, so that trial 1 does not pay for compiling the checkout
    subprocess.run([sys.executable, "-m", "compileall", "-q", "spaces", "trainables"], cwd=code,
                   check=False, stdout=subprocess.DEVNULL)
    cache = args.cache / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    spec = {**base, "code": str(code), "env": {**base["env"], "XSTILTS_CACHE": str(cache)}}
    out = {"code": str(code), "cache": str(cache)}
    for trial in ("cold", "warm"):
        print(f"  {name}: trial {'1 (token cache cold)' if trial == 'cold' else '2 (warm)'} ...",
              flush=True)
        res = run_child("child", spec, work=work, label=f"{name}-{trial}",
                        limit_gib=args.mem_limit_gib, timeout_s=args.timeout_s)
        out[trial] = res
        out[f"cache_bytes_after_{trial}"] = disk_bytes(cache)
        out[f"token_cache_bytes_after_{trial}"] = disk_bytes(cache / "tokens")
        if res["killed"] or res.get("failed"):
            stop = res["killed"] or {"why": f"failed, rc {res['rc']}", "at_s": res["wall_s"]}
            print(f"    stopped ({stop['why']}) at {stop['at_s']:.0f} s", flush=True)
            break
        print(f"    data ready in {res['ready_s']:.1f} s, peak RSS "
              f"{res['vmhwm_at_end'] / GIB:.2f} GiB", flush=True)
    return out


# -- the table ---------------------------------------------------------------------------------
FORMATS = ("classification", "multiple_choice", "span_qa", "tagging")


def _bytes(x: float) -> str:
    return f"{x / GIB:.2f} GiB" if x >= GIB / 4 else f"{x / 2 ** 20:.1f} MiB"


def _load_peak(r: dict) -> dict[str, int]:
    """Peaks of the samples taken while ``load_trial_data`` ran and of the child's own
    reading when it returned (a load shorter than the sampling interval has no sample);
    for a child killed before that, the peaks of every sample."""
    if r.get("memory_at_ready") is None:
        return {k: max(p.get(k, 0) for p in r["peaks"].values())
                for k in {k for p in r["peaks"].values() for k in p}}
    sampled, last = r["peaks"].get("load", {}), r["memory_at_ready"]
    return {k: max(sampled.get(k, 0), last.get(k, 0)) for k in {*sampled, *last}}


#: (row label, memory key of ``_load_peak``) of the memory rows, trial 1 and 2 each
MEMORY_ROWS = (("peak USS while loading (Private_*, sampled)", "uss"),
               ("  of it anonymous (heap)", "anon"),
               ("peak file-backed resident while loading (RSS - anon)", "file"),
               ("peak shared while loading (Shared_*)", "shared"))
TRIALS = (("cold", "trial 1"), ("warm", "trial 2"))


def _cells(res: dict | None, limit: float) -> dict[str, str]:
    """Cells of one variant's column, by row label."""
    if res is None:
        return {}
    cells: dict[str, str] = {}

    def put(label: str, trial: str, value: str) -> None:
        cells[f"{label}, {trial}"] = value

    for key, trial in TRIALS:
        r = res.get(key)
        if r is None:
            put("data-ready s", trial, "not run: trial 1 killed" if res["cold"].get("killed")
                else "not run: trial 1 failed")
            continue
        k, load = r.get("killed"), _load_peak(r)
        stop = None
        if k:
            stop = (f"> {limit:g} GiB (killed at {k['at_s']:.0f} s)" if k["why"] == "memory"
                    else f"timeout (killed at {k['at_s']:.0f} s)")
        elif r.get("failed"):
            stop = f"failed (rc {r['rc']}, {Path(r['log']).name})"
        if stop:
            put("data-ready s", trial, stop)
            put("peak RSS while loading (VmHWM)", trial, stop)
            for label, mem in MEMORY_ROWS:
                put(label, trial, f">= {_bytes(load.get(mem, 0))} when stopped" if load else "-")
        else:
            steps = r["steps"].values()
            lengths_s = sum(x["lengths_s"] for x in steps)
            put("data-ready s", trial, f"{r['ready_s']:.2f}" if r["ready_s"] < 10 else
                f"{r['ready_s']:.1f}")
            put("  + the cursors' lengths() (before step 1) s", trial,
                f"{lengths_s:.1f} (total {r['ready_s'] + lengths_s:.1f})")
            put("  + first batch of each split (device columns) s", trial,
                f"{sum(x['first_batch_s'] for x in steps):.1f}")
            put("RSS before loading (imports, libraries)", trial,
                _bytes(r["memory_before_load"]["rss"]))
            put("peak RSS while loading (VmHWM)", trial, _bytes(r["vmhwm_at_ready"]))
            for label, mem in MEMORY_ROWS:
                put(label, trial, _bytes(load.get(mem, 0)))
            put("peak RSS with the step columns (VmHWM)", trial, _bytes(r["vmhwm_at_end"]))
        put("token cache on disk after", trial,
            f"{_bytes(res.get(f'token_cache_bytes_after_{key}', 0))} (all of XSTILTS_CACHE "
            f"{_bytes(res.get(f'cache_bytes_after_{key}', 0))})")
    done = next((res[t] for t in ("warm", "cold") if res.get(t) and "steps" in res[t]), None)
    if done:
        for fmt in FORMATS:
            got = {n: s for n, s in done["steps"].items() if s["format"] == fmt}
            if got:
                ms = np.mean([s["ms_per_step"] for s in got.values()])
                cells[f"host ms/step (median), {fmt} ({', '.join(got)})"] = f"{ms:.3f}"
        for role in ("train", "eval"):
            got = [s for s in done["splits"].values() if s["role"] == role]
            cells[f"{role} sequences / tokens encoded"] = \
                f"{sum(s['sequences'] for s in got):,} / {sum(s['tokens'] for s in got):,}"
    return cells


def table(figures: dict, limit: float) -> str:
    """Rows = measurements (trial 1 and 2 next to each other), columns = before | after."""
    cols = {v: _cells(figures.get(v), limit) for v in ("before", "after")}
    labels = list(dict.fromkeys([*cols["after"], *cols["before"]]))
    base = list(dict.fromkeys(lab.rsplit(", trial ", 1)[0] for lab in labels))
    rows = [lab for b in base for lab in labels if lab.rsplit(", trial ", 1)[0] == b]
    width = max(len(r) for r in rows) + 2
    wide = max([len(v) for c in cols.values() for v in c.values()] + [12]) + 2
    lines = [f"{'measurement':<{width}}{'before':<{wide}}after", "-" * (width + 2 * wide)]
    lines += [f"{r:<{width}}{cols['before'].get(r, '-'):<{wide}}{cols['after'].get(r, '-')}"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--child", "--prime"):
        (child_main if sys.argv[1] == "--child" else prime_main)(sys.argv[2])
        return
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mirror", type=Path, default=None,
                   help="the synthetic mirror (default ~/.cache/xstilts-bench/mirror[-scaleS])")
    p.add_argument("--cache", type=Path, default=BENCH_HOME / "cache",
                   help="XSTILTS_CACHE of each run is CACHE/<before|after>, emptied first")
    p.add_argument("--scale", type=float, default=1.0,
                   help="shrink every corpus by this factor (at least 64 rows a file)")
    p.add_argument("--max-length", type=int, default=256,
                   help="the trial's max_length (256: the paper-base preset's)")
    p.add_argument("--steps", type=int, default=200, help="timed steps per training split")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before them")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads while steps are timed")
    p.add_argument("--before", type=Path, default=Path("/tmp/xstilts-before"),
                   help="a checkout of the code before the change (git worktree add DIR f08d494)")
    p.add_argument("--skip-before", action="store_true", help="measure the current code only")
    p.add_argument("--skip-after", action="store_true", help="measure the before code only")
    p.add_argument("--mem-limit-gib", type=float, default=12.0,
                   help="kill a child whose process tree passes this RSS")
    p.add_argument("--timeout-s", type=float, default=3600.0, help="kill a child after this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    if not args.skip_before and not (args.before / "trainables").is_dir():
        raise SystemExit(f"--before {args.before} is not a checkout of xstilts; make one with "
                         f"`git -C {ROOT} worktree add {args.before} f08d494`, or --skip-before")
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from trainables.embedded_default import tiny_model_dir

    suffix = "" if args.scale == 1.0 else f"-scale{args.scale:g}"
    mirror = (args.mirror or BENCH_HOME / f"mirror{suffix}").expanduser().resolve()
    args.cache = args.cache.expanduser().resolve()
    work = BENCH_HOME / f"runs{suffix}"
    tok_dir = str(tiny_model_dir())
    print(f"mirror {mirror} ...", flush=True)
    manifest = write_mirror(mirror, AutoTokenizer.from_pretrained(tok_dir), scale=args.scale,
                            seed=args.seed)
    print(f"  {manifest['rows']:,} rows in {len(manifest['files'])} files, "
          f"{manifest['tokens_per_word']} tokens a word, "
          + ("reused" if manifest["reused"] else f"written in {manifest['seconds']} s"),
          flush=True)
    config = trial_config_dict(args.max_length)
    base = {"config": config, "tokenizer": tok_dir, "steps": args.steps, "warmup": args.warmup,
            "threads": args.threads,
            "env": {"XSTILTS_DATA_DIR": str(mirror), "HF_DATASETS_OFFLINE": "1",
                    "HF_HUB_OFFLINE": "1",
                    "HF_DATASETS_CACHE": str(BENCH_HOME / f"hf-datasets{suffix}")}}
    hf_cache = Path(base["env"]["HF_DATASETS_CACHE"])
    filled = hf_cache.exists() and any(hf_cache.iterdir())
    print("datasets cache (once, shared by every run) ...", flush=True)
    prime = run_child("prime", {**base, "code": str(ROOT)}, work=work, label="prime",
                      limit_gib=args.mem_limit_gib, timeout_s=args.timeout_s)
    if "seconds" not in prime:
        raise SystemExit(f"could not fill the datasets cache: see {prime['log']}")
    prime["already_filled"] = filled
    figures: dict = {"settings": {"scale": args.scale, "max_length": args.max_length,
                                  "batch_size": config["batch_size"], "steps": args.steps,
                                  "mem_limit_gib": args.mem_limit_gib, "config": config,
                                  "tokenizer": tok_dir},
                     "mirror": manifest, "prime": prime}
    for name, code, skip in (("before", args.before, args.skip_before),
                             ("after", ROOT, args.skip_after)):
        if not skip:
            figures[name] = measure(code.resolve(), name=name, args=args, base=base, work=work)
    text = table(figures, args.mem_limit_gib)
    head = (f"paper scale x{args.scale:g}: 9 intermediate tasks + XNLI train, XNLI dev in "
            f"{len(config['eval_languages'])} languages; tiny tokenizer, max_length "
            f"{args.max_length}, batch {config['batch_size']}, {args.steps} timed steps a split on "
            f"{args.threads} thread(s)\n"
            f"mirror: {manifest['rows']:,} rows ({mirror}); datasets cache "
            f"{'read (filled by an earlier run)' if filled else 'filled'} in "
            f"{prime['seconds']:.1f} s, once for all runs (not counted below)\n")
    print("\n" + head + text)
    if args.json:
        args.json.write_text(json.dumps({**figures, "table": head + text}, indent=1))


if __name__ == "__main__":
    main()
