"""The task registry: one small frozen record per task.

A task says where its data lives (a Hugging Face dataset id/config, local
files, or the embedded demo suite), which columns hold what, its labels and
its languages. Loading lives in ``trainables``; this module is pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Literal, Mapping

Format = Literal["classification", "multiple_choice", "span_qa", "tagging"]
Role = Literal["intermediate", "target"]
SourceKind = Literal["hf", "files", "demo"]

FORMATS: tuple[str, ...] = ("classification", "multiple_choice", "span_qa", "tagging")
#: formats the trainable can train and score today
TRAINABLE_FORMATS: tuple[str, ...] = ("classification", "multiple_choice")

#: Canonical column names per format; a task maps each to its dataset's column.
CANONICAL_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "classification": ("text_a", "text_b", "label"),
        "multiple_choice": ("context", "choices", "label"),
        "span_qa": ("question", "context", "answers"),
        "tagging": ("tokens", "tags"),
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


def untrainable(tasks: Iterable[TaskSpec]) -> list[str]:
    """``name (format)`` of each task whose format trials cannot train yet."""
    return [f"{t.name} ({t.format})" for t in tasks if t.format not in TRAINABLE_FORMATS]


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


# --- the paper's other intermediate tasks (Phang et al. 2020, Table 1) ---------------
_TRAIN_DEV = MappingProxyType({"train": "train", "dev": "validation"})
register(TaskSpec(
    name="anli", role="intermediate", format="classification",
    source=TaskSource("hf", "facebook/anli", None, splits=MappingProxyType(
        {"train": "train_r1+train_r2+train_r3", "dev": "dev_r1+dev_r2+dev_r3"})),
    columns=_frozen({"text_a": "premise", "text_b": "hypothesis", "label": "label"}),
    labels=_NLI_LABELS,
    description="ANLI rounds 1-3 (the paper's ANLI+ adds MNLI and SNLI: include mnli too)",
))
register(TaskSpec(
    name="ccg", role="intermediate", format="tagging",
    source=TaskSource("files", "ccgbank/{split}.{lang}.jsonl",
                      splits=MappingProxyType({"train": "train", "dev": "dev"})),
    columns=_frozen({"tokens": "tokens", "tags": "tags"}),
    labels=(),
    description="CCG supertagging, 38k sentences; CCGbank is licensed: local files only",
))
register(TaskSpec(
    name="commonsenseqa", role="intermediate", format="multiple_choice",
    source=TaskSource("hf", "tau/commonsense_qa", None, splits=_TRAIN_DEV),
    columns=_frozen({"context": "question", "choices": "choices.text", "label": "answerKey"}),
    labels=("A", "B", "C", "D", "E"),
    description="CommonsenseQA, 9.7k questions, 5 choices",
))
register(TaskSpec(
    name="cosmosqa", role="intermediate", format="multiple_choice",
    source=TaskSource("hf", "allenai/cosmos_qa", None, splits=_TRAIN_DEV),
    columns=_frozen({"context": "context", "choices": "answer0,answer1,answer2,answer3",
                     "label": "label"}),
    labels=("0", "1", "2", "3"),
    description="Cosmos QA, 25k questions, 4 choices",
))
register(TaskSpec(
    name="hellaswag", role="intermediate", format="multiple_choice",
    source=TaskSource("hf", "Rowan/hellaswag", None, splits=_TRAIN_DEV),
    columns=_frozen({"context": "ctx", "choices": "endings", "label": "label"}),
    labels=("0", "1", "2", "3"),
    description="HellaSwag, 39.9k contexts, 4 endings",
))
register(TaskSpec(
    name="qqp", role="intermediate", format="classification",
    source=TaskSource("hf", "nyu-mll/glue", "qqp", splits=_TRAIN_DEV),
    columns=_frozen({"text_a": "question1", "text_b": "question2", "label": "label"}),
    labels=("not_duplicate", "duplicate"),
    description="Quora Question Pairs, 363.8k pairs",
))
register(TaskSpec(
    name="squad", role="intermediate", format="span_qa",
    source=TaskSource("hf", "rajpurkar/squad", None, splits=_TRAIN_DEV),
    columns=_frozen({"question": "question", "context": "context", "answers": "answers"}),
    labels=(),
    metric="f1",
    description="SQuAD v1.1, 87.6k questions, span extraction",
))
register(TaskSpec(
    name="sst2", role="intermediate", format="classification",
    source=TaskSource("hf", "nyu-mll/glue", "sst2", splits=_TRAIN_DEV),
    columns=_frozen({"text_a": "sentence", "text_b": None, "label": "label"}),
    labels=("negative", "positive"),
    description="SST-2 sentiment, 67k sentences",
))

#: the paper's nine intermediate tasks, in its order
PAPER_INTERMEDIATE: tuple[str, ...] = (
    "anli", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp", "squad", "sst2")
