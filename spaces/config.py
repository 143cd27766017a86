"""The trial configuration: one frozen, validated record of a trial's settings.

It crosses into Ray as a plain dict (``to_dict``/``from_dict``) and, flattened,
becomes the Parquet row. Every problem with a config is collected and raised
together, each naming the value, what was expected and how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import yaml

from spaces.objective import OBJECTIVE_ECE
from spaces.models import MODEL_SIZES
from spaces.packing import packing_problem
from spaces.tasks import get_task, intermediate_problem, task_names

MIXING_FAMILIES: tuple[str, ...] = ("softmax", "proportional", "temperature")
EVAL_SPLITS: tuple[str, ...] = ("dev", "test")

#: ``field`` metadata of a key that says how a trial runs, not what it computes: left out of
#: the config hash (``RUN_ONLY_KEYS``)
RUN_ONLY: Mapping[str, bool] = MappingProxyType({"run_only": True})
#: keys that say what a trial's score measures (its target, where and how it is scored,
#: the objective's terms): sweeps that differ in one do not compare scores, and a warm
#: start from such a sweep is refused (``search.study.warm_start``)
OBJECTIVE_KEYS: frozenset[str] = frozenset({
    "target", "eval_split", "eval_languages", "ood_targets", "ood_in_objective",
    "objective_weight", "objective_ece", "ece_bins", "max_eval_examples"})
#: keys added after the first release, left out of the hash at these defaults so that a
#: config keeps its hash across versions
LATER_KEYS: Mapping[str, Any] = MappingProxyType({"eval_languages": [], "retrieval_layer": 0,
                                                  "group_by_length": 50, "objective_ece": "raw",
                                                  "ood_targets": [], "ood_in_objective": False})
#: how a training step runs: ``lean`` (pre-tokenized batches gathered on the device,
#: shape buckets, SDPA attention, one host sync per report) or ``plain`` (padded on the
#: host to each batch's longest, eager attention, a sync per step)
TRAIN_STEPS = ("lean", "plain")


class ConfigError(ValueError):
    """A configuration with one or more problems; ``problems`` lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid trial config ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs; defaults are the embedded demo."""

    #: the target task: fine-tuned in its training language, evaluated zero-shot in the rest
    target: str = "demo-sentiment"
    #: intermediate tasks trained together in phase 2 (at least one)
    intermediate_tasks: tuple[str, ...] = ("demo-polarity",)
    #: how the task of each phase-2 batch is drawn: softmax over ``weights``,
    #: proportional to dataset size, or size capped and tempered
    mixing: str = "softmax"
    #: softmax family: one logit per included task (missing tasks get 0.0)
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    #: temperature family: p ∝ min(n, cap) ** (1 / mixing_temperature)
    mixing_temperature: float = 2.0
    #: proportional/temperature families: cap on a task's size (0 = no cap)
    examples_cap: int = 0
    #: a name from the model-size catalogue (tiny, base, large)
    model_size: str = "tiny"
    learning_rate: float = 1e-5
    weight_decay: float = 0.01
    #: fraction of each phase's steps spent in linear warm-up
    warmup_ratio: float = 0.1
    batch_size: int = 32
    #: optimizer steps of multi-task intermediate training (phase 2); 0 skips it
    intermediate_steps: int = 1000
    #: epochs of English target fine-tuning (phase 3)
    target_epochs: float = 2.0
    #: the split every language is scored on (temperature is always fitted on English dev);
    #: a target without a dev split (XQuAD, TyDiQA-GoldP, Tatoeba publish only test) is
    #: scored on its test split
    eval_split: str = "dev"
    #: the target's languages to score (the training language and at least one other);
    #: empty: all of them
    eval_languages: tuple[str, ...] = ()
    #: out-of-domain evaluation sets: target tasks of the same format and labels, scored in
    #: the languages they share with the target by the target's head, at its temperature,
    #: and stored per language as the main set is (``<task>/<lang>/<metric>``)
    ood_targets: tuple[str, ...] = ()
    #: whether the out-of-domain sets enter the objective: its accuracy and ECE terms are
    #: then the means over the main set and each out-of-domain set
    ood_in_objective: bool = False
    #: retrieval targets (BUCC, Tatoeba): the encoder layer whose hidden states are
    #: mean-pooled into sentence embeddings (1 = first layer); 0: the middle layer
    #: (num_hidden_layers // 2, XTREME's choice)
    retrieval_layer: int = 0
    #: evaluate and report every this many phase-3 steps, besides the sweep's rungs and the
    #: end (0: at rungs and the end only)
    eval_every: int = field(default=0, metadata=RUN_ONLY)
    #: the target probe at a phase-2 rung (``trainables.probe``): a copy of the encoder is
    #: fine-tuned ``probe_steps`` steps on the first ``probe_examples`` English target
    #: training examples and scored on the first ``probe_eval_examples`` of every language;
    #: the trial then goes on from its own state. 0 steps: no probe (phase-2 rungs report
    #: nothing, so ASHA judges the trial in phase 3)
    probe_steps: int = field(default=100, metadata=RUN_ONLY)
    probe_examples: int = field(default=3200, metadata=RUN_ONLY)
    probe_eval_examples: int = field(default=500, metadata=RUN_ONLY)
    max_length: int = 128
    seed: int = 0
    #: λ in score = mean_zs_acc − λ · mean_zs_ece
    objective_weight: float = 1.0
    #: which zero-shot ECE the objective uses: raw | scaled (after temperature scaling on
    #: English dev); ``spaces.objective.OBJECTIVE_ECE``
    objective_ece: str = "raw"
    #: number of equal-width confidence bins for ECE/MCE
    ece_bins: int = 15
    #: debug knobs: cap examples per split (0 = all)
    max_train_examples: int = 0
    max_eval_examples: int = 0
    #: Ray Train workers for this trial (DDP); GPUs used when available and asked for
    num_workers: int = field(default=1, metadata=RUN_ONLY)
    use_gpu: bool = field(default=False, metadata=RUN_ONLY)
    #: phase 2/3 batches are drawn from groups of ``group_by_length`` × batch_size shuffled
    #: examples, sorted by length (HF's ``group_by_length``): little padding, still random
    #: batches; 0 or 1: plain shuffled batches
    group_by_length: int = 50
    #: ``lean`` or ``plain`` (TRAIN_STEPS); both compute the same losses
    train_step: str = field(default="lean", metadata=RUN_ONLY)
    #: ``torch.compile`` the encoder (one graph per shape bucket; pays off on GPUs for long
    #: trials, its compile time counts against the trial)
    compile: bool = field(default=False, metadata=RUN_ONLY)
    #: trial packing: the fraction of one GPU a worker of each model size holds (e.g.
    #: {base: 0.25, large: 0.5}: four base or two large trials per GPU); sizes not named
    #: keep the catalogue's share (spaces/models.py)
    gpu_share: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}),
                                           metadata=RUN_ONLY)
    #: memory of the cluster's GPUs in GiB: when set, a share too small for a size's
    #: estimated need is refused before launch (0: checked on the GPU, at trial start)
    gpu_memory_gib: float = field(default=0.0, metadata=RUN_ONLY)

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError(problems)

    # -- crossing the Ray boundary -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able dict (tuples as lists, mappings as dicts)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Mapping):
                v = {k: v[k] for k in sorted(v)}
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialConfig":
        """Build from a plain dict, reporting unknown keys and wrong types all at once."""
        if not isinstance(data, Mapping):
            raise ConfigError([f"a trial config must be a mapping of keys to values, got {type(data).__name__}"])
        problems: list[str] = []
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in _FIELD_TYPES:
                problems.append(f"unknown key {key!r}; known keys: {', '.join(_FIELD_TYPES)}")
                continue
            try:
                kwargs[key] = _coerce(key, value)
            except (TypeError, ValueError) as exc:
                problems.append(str(exc))
        if problems:
            # still validate the well-typed keys so the user sees everything at once
            try:
                cls(**kwargs)
            except ConfigError as exc:
                problems.extend(exc.problems)
            raise ConfigError(problems)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    # -- identity ----------------------------------------------------------------------
    def mixing_logits(self) -> dict[str, float]:
        """The softmax-family logit of every included task (0.0 where not given)."""
        return {t: float(self.weights.get(t, 0.0)) for t in self.intermediate_tasks}

    def config_hash(self) -> str:
        """A stable hash of what the trial computes (run-only keys left out)."""
        return config_hash(self.to_dict())


#: keys that say how a trial runs, not what it computes (marked ``RUN_ONLY`` on the field)
RUN_ONLY_KEYS: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(TrialConfig) if f.metadata.get("run_only"))


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash: sorted keys, floats normalised to 12 significant digits."""
    canonical = {k: _normalise(v) for k, v in config.items()
                 if k not in RUN_ONLY_KEYS and not (k in LATER_KEYS and v == LATER_KEYS[k])}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _normalise(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return float(f"{f:.12g}") if f != int(f) else int(f)
    if isinstance(v, Mapping):
        return {str(k): _normalise(v[k]) for k in sorted(v)}
    if isinstance(v, (list, tuple)):
        return [_normalise(x) for x in v]
    return str(v)


# -- types and coercion ------------------------------------------------------------------
_FIELD_TYPES: dict[str, str] = {
    f.name: str(f.type) for f in dataclasses.fields(TrialConfig)  # type: ignore[arg-type]
}


def _coerce(key: str, value: Any) -> Any:
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise TypeError(f"{key}={value!r}: expected true or false")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise TypeError(f"{key}={value!r}: expected an integer")
        return value
    if kind == "float":
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise TypeError(f"{key}={value!r}: expected a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{key}={value!r}: expected a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"{key}={value!r}: expected a string")
        return value
    if kind.startswith("tuple"):
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise TypeError(f"{key}={value!r}: expected a list of names, e.g. [a, b] or a,b")
        return tuple(value)
    if kind.startswith("Mapping"):
        if not isinstance(value, Mapping):
            what = "model size" if key == "gpu_share" else "task name"
            raise TypeError(f"{key}={value!r}: expected a mapping of {what} to number, e.g. {{a: 0.5}}")
        bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            what = "model size" if key == "gpu_share" else "task"
            raise TypeError(f"{key}: values for {bad} are not numbers; give one number per {what}")
        return MappingProxyType({str(k): float(v) for k, v in value.items()})
    raise AssertionError(f"no coercion for field type {kind}")  # internal invariant


# -- validation ---------------------------------------------------------------------------
def _problems(c: TrialConfig) -> Iterable[str]:
    known_inter = task_names("intermediate")
    known_targets = task_names("target")
    if c.target not in known_targets:
        yield f"target={c.target!r} is not a target task; choose one of: {', '.join(known_targets)}"
    if not c.intermediate_tasks and c.intermediate_steps > 0:
        yield ("intermediate_tasks is empty; include at least one of: "
               f"{', '.join(known_inter)} (or set intermediate_steps=0 to skip phase 2)")
    for t in c.intermediate_tasks:
        problem = intermediate_problem(t)
        if problem:
            yield f"intermediate task {problem}"
    dupes = sorted({t for t in c.intermediate_tasks if c.intermediate_tasks.count(t) > 1})
    if dupes:
        yield f"intermediate_tasks lists {dupes} more than once; list each task once"
    if c.mixing not in MIXING_FAMILIES:
        yield f"mixing={c.mixing!r} is unknown; choose one of: {', '.join(MIXING_FAMILIES)}"
    for t, w in c.weights.items():
        if t not in c.intermediate_tasks:
            yield (f"weights has an entry for {t!r}, which is not in intermediate_tasks "
                   f"{list(c.intermediate_tasks)}; remove it or include the task")
        if not math.isfinite(w):
            yield f"weights[{t!r}]={w!r} is not a finite number; give a finite logit"
        elif w < 0 and c.mixing != "softmax":
            # weights are softmax logits (negative is fine there); the size-based
            # families read them as none, so a negative one is a mistake
            yield (f"weights[{t!r}]={w!r} is negative with mixing={c.mixing!r}; weights are "
                   "softmax logits: use mixing: softmax, or drop the weights")
    if c.eval_languages and c.target in known_targets:
        languages = get_task(c.target).languages
        unknown = [lang for lang in c.eval_languages if lang not in languages]
        if unknown:
            yield (f"eval_languages {unknown} are not languages of target {c.target!r}; "
                   f"it has: {', '.join(languages)}")
        elif not set(c.eval_languages) - {languages[0]}:
            yield (f"eval_languages={list(c.eval_languages)} has no zero-shot language; add "
                   f"at least one of: {', '.join(languages[1:])}")
    yield from _ood_problems(c, known_targets)
    if c.model_size in MODEL_SIZES and c.retrieval_layer > MODEL_SIZES[c.model_size].layers:
        layers = MODEL_SIZES[c.model_size].layers
        yield (f"retrieval_layer={c.retrieval_layer} is past the last layer of model_size="
               f"{c.model_size!r} ({layers} layers); choose 1..{layers}, or 0 for the middle one")
    if c.eval_split not in EVAL_SPLITS:
        yield f"eval_split={c.eval_split!r} is unknown; choose one of: {', '.join(EVAL_SPLITS)}"
    if c.model_size not in MODEL_SIZES:
        yield f"model_size={c.model_size!r} is unknown; choose one of: {', '.join(MODEL_SIZES)}"
    if c.objective_ece not in OBJECTIVE_ECE:
        yield (f"objective_ece={c.objective_ece!r} is unknown; choose one of: "
               f"{', '.join(OBJECTIVE_ECE)} (ECE after temperature scaling on English dev)")
    if c.train_step not in TRAIN_STEPS:
        yield f"train_step={c.train_step!r} is unknown; choose one of: {', '.join(TRAIN_STEPS)}"
    yield from _range("learning_rate", c.learning_rate, 0.0, 1.0, low_open=True)
    yield from _range("weight_decay", c.weight_decay, 0.0, 1.0)
    yield from _range("warmup_ratio", c.warmup_ratio, 0.0, 1.0, high_open=True)
    yield from _range("mixing_temperature", c.mixing_temperature, 0.0, math.inf, low_open=True)
    yield from _range("target_epochs", c.target_epochs, 0.0, math.inf, low_open=True)
    yield from _range("objective_weight", c.objective_weight, 0.0, math.inf)
    for name, value, low in (
        ("batch_size", c.batch_size, 1), ("intermediate_steps", c.intermediate_steps, 0),
        ("eval_every", c.eval_every, 0), ("max_length", c.max_length, 8), ("ece_bins", c.ece_bins, 1),
        ("examples_cap", c.examples_cap, 0), ("max_train_examples", c.max_train_examples, 0),
        ("max_eval_examples", c.max_eval_examples, 0), ("num_workers", c.num_workers, 1),
        ("seed", c.seed, 0), ("retrieval_layer", c.retrieval_layer, 0),
        ("group_by_length", c.group_by_length, 0), ("probe_steps", c.probe_steps, 0),
        ("probe_examples", c.probe_examples, 1), ("probe_eval_examples", c.probe_eval_examples, 1),
    ):
        if value < low:
            yield f"{name}={value!r} is too small; expected an integer >= {low}"
    yield from _packing_problems(c)


def _ood_problems(c: TrialConfig, known_targets: tuple[str, ...]) -> Iterable[str]:
    if c.target not in known_targets:
        return
    target = get_task(c.target)
    for name in c.ood_targets:
        if name not in known_targets:
            yield (f"ood_targets: {name!r} is not a target task; choose among those of "
                   f"target {c.target!r}'s format and labels: "
                   f"{', '.join(_ood_candidates(target)) or 'none registered'}")
            continue
        ood = get_task(name)
        if name == c.target or target.format == "retrieval" or ood.format != target.format \
                or ood.labels != target.labels or not set(ood.languages) & set(target.languages):
            yield (f"ood_targets: {name!r} cannot be scored by target {c.target!r}'s head: it "
                   f"needs another {target.format} target with labels {list(target.labels)} "
                   f"and a language in common; registered: "
                   f"{', '.join(_ood_candidates(target)) or 'none'}")
    if c.ood_in_objective and not c.ood_targets:
        yield "ood_in_objective=true needs ood_targets: name the out-of-domain sets to score"


def _ood_candidates(target) -> list[str]:
    """The registered targets that could be ``target``'s out-of-domain sets."""
    return [n for n in task_names("target") if n != target.name and target.format != "retrieval"
            and get_task(n).format == target.format and get_task(n).labels == target.labels
            and set(get_task(n).languages) & set(target.languages)]


def _packing_problems(c: TrialConfig) -> Iterable[str]:
    bad_share = False
    for size, share in c.gpu_share.items():
        if size not in MODEL_SIZES:
            bad_share = True
            yield (f"gpu_share has an entry for {size!r}, which is not a model size; "
                   f"choose from: {', '.join(MODEL_SIZES)}")
        if not 0.0 < share <= 1.0:  # NaN fails too
            bad_share = True
            yield (f"gpu_share[{size!r}]={share!r} is out of range; expected a fraction of one "
                   "GPU in (0, 1], e.g. 0.25 for four workers per GPU")
    if not (math.isfinite(c.gpu_memory_gib) and c.gpu_memory_gib >= 0):
        yield (f"gpu_memory_gib={c.gpu_memory_gib!r} is out of range; expected the memory of "
               "one of the cluster's GPUs in GiB (e.g. 79 for an 80 GB H100), or 0 to check "
               "at trial start")
    elif (c.use_gpu and c.gpu_memory_gib > 0 and not bad_share and c.model_size in MODEL_SIZES
          and c.batch_size >= 1 and c.max_length >= 8 and c.num_workers >= 1
          and c.train_step in TRAIN_STEPS and c.target in task_names("target")):
        problem = packing_problem(c, c.model_size, c.batch_size)
        if problem:
            yield problem


def _range(name: str, value: float, low: float, high: float, *,
           low_open: bool = False, high_open: bool = False) -> Iterable[str]:
    ok = math.isfinite(value) if math.isfinite(high) else not math.isnan(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        yield f"{name}={value!r} is out of range; expected a number in {lo}{low}, {high}{hi}"


# -- overrides from the command line -------------------------------------------------------
def apply_overrides(base: Mapping[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (values parsed as YAML) to a config dict.

    ``weights.demo-topic=1.5`` sets one entry of a mapping field.
    """
    out = dict(base)
    problems: list[str] = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {item!r} is not key=value; write e.g. --set seed=3")
            continue
        head, dot, sub = key.partition(".")
        if head not in _FIELD_TYPES:
            problems.append(f"--set {key}: unknown key; known keys: {', '.join(_FIELD_TYPES)}")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if dot:
            if not _FIELD_TYPES[head].startswith("Mapping"):
                problems.append(f"--set {key}: {head} is not a mapping; write --set {head}=VALUE")
                continue
            out[head] = {**dict(out.get(head) or {}), sub: value}
        else:
            out[head] = value
    if problems:
        raise ConfigError(problems)
    return out
