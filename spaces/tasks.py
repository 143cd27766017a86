"""The task registry: one small frozen record per task.

A task says where its data lives (a Hugging Face dataset id/config, local
files, or the embedded demo suite), which columns hold what, its labels and
its languages. Loading lives in ``trainables``; this module is pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

Format = Literal["classification", "multiple_choice"]
Role = Literal["intermediate", "target"]
SourceKind = Literal["hf", "files", "demo"]

FORMATS: tuple[str, ...] = ("classification", "multiple_choice")

#: Canonical column names per format; a task maps each to its dataset's column.
CANONICAL_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "classification": ("text_a", "text_b", "label"),
        "multiple_choice": ("context", "choices", "label"),
    }
)


@dataclass(frozen=True)
class TaskSource:
    """Where a task's data comes from.

    ``kind="hf"``: ``datasets.load_dataset(path, config)``; ``config`` and the
    split names may hold ``{lang}`` for per-language configs (XNLI, PAWS-X).
    ``kind="files"``: local JSONL/Parquet files, ``path`` a template such as
    ``/data/ccg/{split}.{lang}.jsonl``. ``kind="demo"``: files of the embedded
    demo suite, built on first use; ``path`` is the task's folder in it.
    """

    kind: SourceKind
    path: str
    config: str | None = None
    #: our split name (train, dev, test) -> the source's split name
    splits: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"train": "train", "dev": "validation"})
    )


@dataclass(frozen=True)
class TaskSpec:
    """One task: name, role, format, source, columns, labels, languages."""

    name: str
    role: Role
    format: Format
    source: TaskSource
    #: canonical column -> dataset column (text_b may map to None for single sentences)
    columns: Mapping[str, str | None]
    #: label names in index order (classification); for multiple choice, the number
    #: of choices is ``len(labels)`` and labels are choice indices
    labels: tuple[str, ...]
    #: the training language first; every other one is evaluated zero-shot
    languages: tuple[str, ...] = ("en",)
    metric: str = "accuracy"
    description: str = ""

    @property
    def train_language(self) -> str:
        return self.languages[0]

    @property
    def zero_shot_languages(self) -> tuple[str, ...]:
        return self.languages[1:]

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def _frozen(mapping: Mapping[str, str | None]) -> Mapping[str, str | None]:
    return MappingProxyType(dict(mapping))


_DEMO_LANGS = ("en", "de", "fr", "sw")
_NLI_LABELS = ("entailment", "neutral", "contradiction")
_XNLI_LANGS = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
_PAWSX_LANGS = ("en", "de", "es", "fr", "ja", "ko", "zh")

_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry; names are unique."""
    if spec.name in _REGISTRY:
        raise ValueError(f"task {spec.name!r} is already registered; choose another name")
    expected = CANONICAL_COLUMNS[spec.format]
    missing = [c for c in expected if c not in spec.columns]
    if missing:
        raise ValueError(
            f"task {spec.name!r}: columns mapping lacks {missing}; a {spec.format} task maps "
            f"each of {list(expected)} to a dataset column"
        )
    _REGISTRY[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``; unknown names list the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}"
        ) from None


def task_names(role: Role | None = None) -> tuple[str, ...]:
    """Registered task names, optionally only those of one role, sorted."""
    return tuple(sorted(n for n, t in _REGISTRY.items() if role is None or t.role == role))


_CLS_COLUMNS = _frozen({"text_a": "text_a", "text_b": "text_b", "label": "label"})
_DEMO_SPLITS = MappingProxyType({"train": "train", "dev": "dev", "test": "test"})

# --- the embedded demo suite (built by trainables.demo_suite) -------------------
register(TaskSpec(
    name="demo-polarity", role="intermediate", format="classification",
    source=TaskSource("demo", "demo-polarity", splits=_DEMO_SPLITS),
    columns=_frozen({"text_a": "text_a", "text_b": None, "label": "label"}),
    labels=("negative", "positive"),
    description="English word-group polarity; teaches the lexicon the target needs (helps)",
))
register(TaskSpec(
    name="demo-topic", role="intermediate", format="classification",
    source=TaskSource("demo", "demo-topic", splits=_DEMO_SPLITS),
    columns=_frozen({"text_a": "text_a", "text_b": None, "label": "label"}),
    labels=("animals", "food", "places", "tools"),
    description="English topic of a word group; a feature the target ignores (does not help)",
))
register(TaskSpec(
    name="demo-match", role="intermediate", format="multiple_choice",
    source=TaskSource("demo", "demo-match", splits=_DEMO_SPLITS),
    columns=_frozen({"context": "context", "choices": "choices", "label": "label"}),
    labels=("0", "1", "2", "3"),
    description="English multiple choice: the continuation whose topic matches the context",
))
register(TaskSpec(
    name="demo-sentiment", role="target", format="classification",
    source=TaskSource("demo", "demo-sentiment", splits=_DEMO_SPLITS),
    columns=_frozen({"text_a": "text_a", "text_b": "text_b", "label": "label"}),
    labels=("negative", "positive"),
    languages=_DEMO_LANGS,
    description="Review pair sentiment; small English train set, zero-shot de/fr/sw",
))

# --- real tasks on the HF hub -----------------------------------------------------
register(TaskSpec(
    name="mnli", role="intermediate", format="classification",
    source=TaskSource("hf", "nyu-mll/glue", "mnli",
                      splits=MappingProxyType({"train": "train", "dev": "validation_matched"})),
    columns=_frozen({"text_a": "premise", "text_b": "hypothesis", "label": "label"}),
    labels=_NLI_LABELS,
    description="MultiNLI, 392.7k English training pairs",
))
register(TaskSpec(
    name="xnli", role="target", format="classification",
    source=TaskSource("hf", "facebook/xnli", "{lang}",
                      splits=MappingProxyType({"train": "train", "dev": "validation", "test": "test"})),
    columns=_frozen({"text_a": "premise", "text_b": "hypothesis", "label": "label"}),
    labels=_NLI_LABELS,
    languages=_XNLI_LANGS,
    description="XNLI: trained on English (MNLI-derived), zero-shot in 14 languages",
))
register(TaskSpec(
    name="pawsx", role="target", format="classification",
    source=TaskSource("hf", "google-research-datasets/paws-x", "{lang}",
                      splits=MappingProxyType({"train": "train", "dev": "validation", "test": "test"})),
    columns=_frozen({"text_a": "sentence1", "text_b": "sentence2", "label": "label"}),
    labels=("different", "paraphrase"),
    languages=_PAWSX_LANGS,
    description="PAWS-X paraphrase identification, zero-shot in 6 languages",
))
