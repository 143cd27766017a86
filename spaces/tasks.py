"""The task registry: one small frozen record per task.

A task says where its data lives (a Hugging Face dataset id/config, local
files, or the embedded demo suite), which columns hold what, its labels and
its languages. Loading lives in ``trainables``; this module is pure data.

A task's training data in another of its languages is an intermediate task of its
own, written ``task@lang`` (``xnli@de``: XNLI's German training data, MNLI machine-
translated; ``panx@fr``): ``get_task`` derives it from the registered task, with
that language as its only (training) language, so it loads, trains, is searched
(``task/xnli@de``, ``weight/xnli@de``) and cached under its own name. It needs a
format phase 2 trains (not retrieval) and a training split of the task's own (XQuAD
and MLQA train on SQuAD: none). ``task@en`` of a target is that target's English
training data as an intermediate task (``xnli@en``); of an intermediate task whose
training language it is, it would be the task itself under a second name, and is
refused (write ``demo-polarity``). ``task_names`` lists only the registered tasks.

The rows follow ``docs/tasks.md`` (sources, configs, nested columns, label
encodings); ``tests/fixtures/xtreme/<task>/`` holds a few rows of each task in
its hub schema.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, Mapping

from spaces.errors import UnknownNameError

Format = Literal["classification", "multiple_choice", "span_qa", "tagging", "retrieval"]
Role = Literal["intermediate", "target"]
SourceKind = Literal["hf", "files", "demo"]
LabelEncoding = Literal["index", "name"]
#: a dataset column, a nested field (``"choices.text"``) or several columns
#: (a tuple: one choice per column for ``choices``, else joined with a space)
ColumnSpec = str | tuple[str, ...] | None

FORMATS: tuple[str, ...] = ("classification", "multiple_choice", "span_qa", "tagging", "retrieval")
#: the formats phase 2 trains (a retrieval task scores the encoder as it is: it has no head)
INTERMEDIATE_FORMATS: tuple[str, ...] = ("classification", "multiple_choice", "span_qa", "tagging")
#: separates a task from the language of its training data in ``task@lang``
LANGUAGE_SEPARATOR = "@"

#: Canonical column names per format; a task maps each to its dataset's column.
CANONICAL_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "classification": ("text_a", "text_b", "label"),
        "multiple_choice": ("context", "choices", "label"),
        "span_qa": ("question", "context", "answers"),
        "tagging": ("tokens", "tags"),
        "retrieval": ("source", "target"),
    }
)
#: Columns a task may map in addition: example ids (span QA) and sentence ids
#: (retrieval; without them row i of the source side is aligned with row i of the target)
OPTIONAL_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"span_qa": ("id",), "retrieval": ("source_id", "target_id")}
)
#: our split name -> the file name of that split in a local mirror, unless the
#: source's own split name is already one of these file names
MIRROR_FILES: Mapping[str, str] = MappingProxyType(
    {"train": "train", "dev": "validation", "test": "test"})


@dataclass(frozen=True)
class LanguageFilter:
    """Selects one language's rows from a config that holds several (TyDiQA-GoldP).

    Keeps the rows whose ``column`` value, cut at the first ``separator``, equals
    ``values[lang]`` (TyDiQA: ``id.split("-")[0] == "finnish"``).
    """

    column: str
    values: Mapping[str, str]
    separator: str = "-"


@dataclass(frozen=True)
class TaskSource:
    """Where a task's data comes from.

    ``kind="hf"``: ``datasets.load_dataset(path, config)``; ``config`` and the
    split names may hold ``{lang}`` for per-language configs (XNLI, PAWS-X).
    ``kind="files"``: JSONL/Parquet files, ``path`` a template such as
    ``/data/ccg/{split}.{lang}.jsonl`` (absolute, on a disk every node mounts: a
    trial's working directory is its own) or a storage URI such as
    ``s3://bucket/ccg/{split}.{lang}.jsonl`` (any ``pyarrow.fs`` URI, read on each
    node with the credentials of its environment). ``kind="demo"``: files of the
    embedded demo suite, built on first use; ``path`` is the task's folder in it.
    """

    kind: SourceKind
    path: str
    config: str | None = None
    #: our split name (train, dev, test) -> the source's split name
    splits: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"train": "train", "dev": "validation"})
    )
    #: our language code -> what ``{lang}`` becomes in config and split names, where the
    #: source does not use the code itself (UD-POS: language names, Tatoeba: ISO 639-3);
    #: empty: the code itself
    config_languages: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: for sources that hold every language in one config: how to pick one language's rows
    language_filter: LanguageFilter | None = None

    def config_language(self, language: str) -> str:
        """The value of ``{lang}`` for ``language``; KeyError if the source has none."""
        if not self.config_languages:
            return language
        try:
            return self.config_languages[language]
        except KeyError:
            raise UnknownNameError(f"{self.path} has no config for language {language!r}; it has: "
                           f"{', '.join(self.config_languages)}") from None

    def mirror_split(self, split: str) -> str:
        """The file name (without language and suffix) of ``split`` in a local mirror.

        The source's split name where it is ``train``, ``validation`` or ``test``
        (XQuAD's test set is the hub's ``validation``), else ``MIRROR_FILES[split]``
        (MNLI dev, ``validation_matched`` on the hub, is ``validation``).
        """
        name = self.splits[split]
        return name if name in MIRROR_FILES.values() else MIRROR_FILES[split]


@dataclass(frozen=True)
class TaskSpec:
    """One task: name, role, format, source, columns, labels, languages."""

    name: str
    role: Role
    format: Format
    source: TaskSource
    #: canonical column -> dataset column (text_b may map to None for single sentences);
    #: a nested field as ``"parent.child"``, several columns as a tuple (see ``ColumnSpec``)
    columns: Mapping[str, ColumnSpec]
    #: label names in index order (classification, tagging); for multiple choice, the
    #: number of choices is ``len(labels)`` and labels are choice indices; empty for
    #: tagging tasks whose tag vocabulary comes from their training file (CCG)
    labels: tuple[str, ...]
    #: the training language first; a target evaluates every other one zero-shot
    #: (retrieval: English, the side every other language is paired with, first); an
    #: intermediate task's others are languages its training data also comes in, each
    #: an intermediate task of its own (``demo-polarity@de``), never evaluated
    languages: tuple[str, ...] = ("en",)
    metric: str = "accuracy"
    description: str = ""
    #: how the label column stores labels: ``"index"`` (ClassLabel or int) or ``"name"``
    #: (strings, looked up in ``labels`` or in ``choice_label_column``)
    label_encoding: LabelEncoding = "index"
    #: multiple choice with ``label_encoding="name"``: a column holding each row's choice
    #: names; the label is the position of its name there (CommonsenseQA ``choices.label``)
    choice_label_column: str | None = None
    #: another task whose training split trains this one (XQuAD and MLQA: SQuAD)
    train_task: str | None = None

    @property
    def base_name(self) -> str:
        """The registered task whose data this is: ``xnli`` for ``xnli@de``, else ``name``
        (a local mirror's folder, a ``files`` task's variable)."""
        return split_language(self.name)[0]

    @property
    def train_language(self) -> str:
        return self.languages[0]

    @property
    def zero_shot_languages(self) -> tuple[str, ...]:
        return self.languages[1:]

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def _frozen(mapping: Mapping[str, ColumnSpec]) -> Mapping[str, ColumnSpec]:
    return MappingProxyType(dict(mapping))


_DEMO_LANGS = ("en", "de", "fr", "sw")
_NLI_LABELS = ("entailment", "neutral", "contradiction")
_XNLI_LANGS = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
_PAWSX_LANGS = ("en", "de", "es", "fr", "ja", "ko", "zh")

_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry; names are unique. All problems are reported together."""
    if spec.name in _REGISTRY:
        raise ValueError(f"task {spec.name!r} is already registered; choose another name")
    if LANGUAGE_SEPARATOR in spec.name:
        raise ValueError(f"task name {spec.name!r} holds {LANGUAGE_SEPARATOR!r}, which names a "
                         f"task's training data in another language (xnli@de); choose another name")
    problems = []
    expected = CANONICAL_COLUMNS[spec.format]
    missing = [c for c in expected if c not in spec.columns]
    if missing:
        problems.append(
            f"columns mapping lacks {missing}; a {spec.format} task maps "
            f"each of {list(expected)} to a dataset column")
    allowed = expected + OPTIONAL_COLUMNS.get(spec.format, ())
    unknown = [c for c in spec.columns if c not in allowed]
    if unknown:
        problems.append(f"columns {unknown} are not columns of a {spec.format} task; "
                        f"it maps {list(allowed)}")
    if spec.label_encoding not in ("index", "name"):
        problems.append(f"label_encoding={spec.label_encoding!r}; use 'index' or 'name'")
    if spec.choice_label_column and (spec.format != "multiple_choice"
                                     or spec.label_encoding != "name"):
        problems.append("choice_label_column needs a multiple_choice task with "
                        "label_encoding='name'")
    if ("source_id" in spec.columns) != ("target_id" in spec.columns):
        problems.append("map both source_id and target_id (sentence ids of a pair) or neither")
    if problems:
        raise ValueError(f"task {spec.name!r}: " + "; ".join(problems))
    _REGISTRY[spec.name] = spec
    return spec


def split_language(name: str) -> tuple[str, str | None]:
    """``("xnli", "de")`` for ``"xnli@de"``, ``(name, None)`` for a name without a language;
    the one place that reads ``task@lang``."""
    base, sep, language = name.partition(LANGUAGE_SEPARATOR)
    return (base, language) if sep else (name, None)


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``, or for ``task@lang`` that task's training data
    in ``lang`` as an intermediate task (see the module docstring).

    Raises:
        KeyError: an unknown task (the message lists the known ones), or a language the
            task lacks (it lists the task's languages).
        ValueError: ``task@lang`` of a task that cannot be an intermediate task (retrieval,
            no training split of its own), or ``task@lang`` naming a registered
            intermediate task itself.
    """
    base, language = split_language(name)
    if language is not None:
        return _in_language(base, language)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}"
        ) from None


@functools.cache  # one spec per name: the same object every time (failures are not cached)
def _in_language(base: str, language: str) -> TaskSpec:
    name = f"{base}{LANGUAGE_SEPARATOR}{language}"
    try:
        task = get_task(base)
    except KeyError as exc:
        raise UnknownNameError(f"{name!r}: {exc.args[0]}") from None
    if task.format not in INTERMEDIATE_FORMATS:
        raise ValueError(f"{name!r}: {base} is a {task.format} task, which phase 2 cannot train "
                         f"(it has no head); intermediate tasks are of the formats "
                         f"{', '.join(INTERMEDIATE_FORMATS)}")
    if "train" not in task.source.splits:
        trained_on = f" (it trains on {task.train_task})" if task.train_task else ""
        raise ValueError(f"{name!r}: {base} has no training data of its own{trained_on}, so it "
                         "cannot be an intermediate task; choose a task with a train split")
    if language not in task.languages:
        raise UnknownNameError(f"{name!r}: {base} has no language {language!r}; it has: "
                       f"{', '.join(task.languages)}; write {base}{LANGUAGE_SEPARATOR}LANG "
                       "with one of them")
    if task.role == "intermediate" and language == task.train_language:
        raise ValueError(f"{name!r} is {base} itself ({language} is its training language); "
                         f"write {base!r}")
    return replace(task, name=name, role="intermediate", languages=(language,), train_task=None,
                   description=f"{base}'s {language} training data as an intermediate task "
                               f"({task.description})")


def intermediate_problem(name: str) -> str | None:
    """Why ``name`` cannot be an intermediate task, as a sentence that starts with the
    quoted name and says what to write instead; None for a registered intermediate task
    or a valid ``task@lang``."""
    try:
        task = get_task(name)
    except (KeyError, ValueError) as exc:
        if split_language(name)[1] is not None:
            return exc.args[0]
        task = None
    if task is not None and task.role == "intermediate":
        return None
    known = ", ".join(task_names("intermediate"))
    own = f"{name}{LANGUAGE_SEPARATOR}{task.train_language}" if task is not None else ""
    if task is not None and intermediate_problem(own) is None:
        return (f"{name!r} is a target task; write {own} for its {task.train_language} "
                f"training data as an intermediate task, or choose from: {known}")
    what = "is a target task" if task is not None else "is unknown"
    return (f"{name!r} {what}; choose from: {known}; or a task's training data in one of its "
            f"languages, written TASK{LANGUAGE_SEPARATOR}LANG (e.g. xnli@de)")


def task_names(role: Role | None = None) -> tuple[str, ...]:
    """Registered task names, optionally only those of one role, sorted (never
    ``task@lang``: those are derived, see ``get_task``)."""
    return tuple(sorted(n for n, t in _REGISTRY.items() if role is None or t.role == role))


_CLS_COLUMNS = _frozen({"text_a": "text_a", "text_b": "text_b", "label": "label"})
_DEMO_SPLITS = MappingProxyType({"train": "train", "dev": "dev", "test": "test"})

# --- the embedded demo suite (built by trainables.demo_suite) -------------------
register(TaskSpec(
    name="demo-polarity", role="intermediate", format="classification",
    source=TaskSource("demo", "demo-polarity", splits=_DEMO_SPLITS),
    columns=_frozen({"text_a": "text_a", "text_b": None, "label": "label"}),
    labels=("negative", "positive"),
    languages=("en", "de"),
    description="English word-group polarity; teaches the lexicon the target needs (helps); "
                "demo-polarity@de: the same task in German",
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
    name="demo-tags", role="intermediate", format="tagging",
    source=TaskSource("demo", "demo-tags", splits=_DEMO_SPLITS),
    columns=_frozen({"tokens": "tokens", "tags": "tags"}),
    labels=("O", "NEG", "NEU", "POS"),
    label_encoding="name",
    metric="token_accuracy",
    description="English word polarity tagging (one tag per word); the lexicon token by "
                "token, which the sentence-level target does not pick up (does not help)",
))
register(TaskSpec(
    name="demo-sentiment", role="target", format="classification",
    source=TaskSource("demo", "demo-sentiment", splits=_DEMO_SPLITS),
    columns=_frozen({"text_a": "text_a", "text_b": "text_b", "label": "label"}),
    labels=("negative", "positive"),
    languages=_DEMO_LANGS,
    description="Review pair sentiment; small English train set, zero-shot de/fr/sw",
))
register(TaskSpec(
    name="demo-sentiment-ood", role="target", format="classification",
    source=TaskSource("demo", "demo-sentiment-ood", splits=_DEMO_SPLITS),
    columns=_frozen({"text_a": "text_a", "text_b": "text_b", "label": "label"}),
    labels=("negative", "positive"),
    languages=_DEMO_LANGS,
    description="demo-sentiment out of domain: the same question about reviews of one topic "
                "(tools), in other wordings; an ood_targets set for demo-sentiment",
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
_TRAIN_DEV_TEST = MappingProxyType({"train": "train", "dev": "validation", "test": "test"})
_QA_COLUMNS = _frozen({"question": "question", "context": "context", "answers": "answers",
                       "id": "id"})
register(TaskSpec(
    name="anli", role="intermediate", format="classification",
    source=TaskSource("hf", "facebook/anli", "plain_text", splits=MappingProxyType(
        {"train": "train_r1+train_r2+train_r3", "dev": "dev_r1+dev_r2+dev_r3",
         "test": "test_r1+test_r2+test_r3"})),
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
    label_encoding="name",
    metric="token_accuracy",
    description="CCG supertagging, 38k sentences; CCGbank is licensed: local files only; "
                "supertag strings, the tag vocabulary comes from the training file",
))
register(TaskSpec(
    name="commonsenseqa", role="intermediate", format="multiple_choice",
    source=TaskSource("hf", "tau/commonsense_qa", None, splits=_TRAIN_DEV),
    columns=_frozen({"context": "question", "choices": "choices.text", "label": "answerKey"}),
    labels=("A", "B", "C", "D", "E"),
    label_encoding="name",
    choice_label_column="choices.label",
    description="CommonsenseQA, 9.7k questions, 5 choices; the answer is a letter of choices.label",
))
register(TaskSpec(
    name="cosmosqa", role="intermediate", format="multiple_choice",
    source=TaskSource("hf", "allenai/cosmos_qa", None, splits=_TRAIN_DEV),
    columns=_frozen({"context": ("context", "question"),
                     "choices": ("answer0", "answer1", "answer2", "answer3"),
                     "label": "label"}),
    labels=("0", "1", "2", "3"),
    description="Cosmos QA, 25k questions, 4 choices; the question follows the context",
))
register(TaskSpec(
    name="hellaswag", role="intermediate", format="multiple_choice",
    source=TaskSource("hf", "Rowan/hellaswag", None, splits=_TRAIN_DEV),
    columns=_frozen({"context": "ctx", "choices": "endings", "label": "label"}),
    labels=("0", "1", "2", "3"),
    label_encoding="name",
    description="HellaSwag, 39.9k contexts, 4 endings; labels are the strings '0'-'3'",
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
    source=TaskSource("hf", "rajpurkar/squad", "plain_text", splits=_TRAIN_DEV),
    columns=_QA_COLUMNS,
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


# --- the other XTREME targets (Hu et al. 2020), google/xtreme configs -------------------
_UDPOS_NAMES = MappingProxyType({
    "en": "English", "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German",
    "el": "Greek", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese"})
_UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
         "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
_PANX_LANGS = ("en", "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr",
               "he", "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms",
               "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh")
_TATOEBA_CODES = MappingProxyType({
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa",
    "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie",
    "zh": "cmn"})
_TYDIQA_NAMES = MappingProxyType({
    "en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"})

register(TaskSpec(
    name="udpos", role="target", format="tagging",
    source=TaskSource("hf", "google/xtreme", "udpos.{lang}", splits=_TRAIN_DEV_TEST,
                      config_languages=_UDPOS_NAMES),
    columns=_frozen({"tokens": "tokens", "tags": "pos_tags"}),
    labels=_UPOS,
    languages=tuple(_UDPOS_NAMES),
    metric="token_accuracy",
    description="Universal Dependencies POS tagging (17 UPOS tags), zero-shot in 32 languages; "
                "XTREME's tables call the accuracy F1",
))
register(TaskSpec(
    name="panx", role="target", format="tagging",
    source=TaskSource("hf", "google/xtreme", "PAN-X.{lang}", splits=_TRAIN_DEV_TEST),
    columns=_frozen({"tokens": "tokens", "tags": "ner_tags"}),
    labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"),
    languages=_PANX_LANGS,
    metric="entity_f1",
    description="PAN-X (WikiANN) NER, IOB2, zero-shot in 39 languages",
))
register(TaskSpec(
    name="xquad", role="target", format="span_qa",
    source=TaskSource("hf", "google/xtreme", "XQuAD.{lang}",
                      splits=MappingProxyType({"test": "validation"})),
    columns=_frozen({"question": "question", "context": "context", "answers": "answers",
                     "id": "id"}),
    labels=(),
    languages=("en", "ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh"),
    metric="f1",
    train_task="squad",
    description="XQuAD: SQuAD dev translated into 10 languages; trained on SQuAD v1.1",
))
register(TaskSpec(
    name="mlqa", role="target", format="span_qa",
    source=TaskSource("hf", "google/xtreme", "MLQA.{lang}.{lang}",
                      splits=MappingProxyType({"dev": "validation", "test": "test"})),
    columns=_QA_COLUMNS,
    labels=(),
    languages=("en", "ar", "de", "es", "hi", "vi", "zh"),
    metric="f1",
    train_task="squad",
    description="MLQA, context and question in the same language; trained on SQuAD v1.1; "
                "scored with MLQA's per-language normalisation",
))
register(TaskSpec(
    name="tydiqa", role="target", format="span_qa",
    source=TaskSource("hf", "google/xtreme", "tydiqa",
                      splits=MappingProxyType({"train": "train", "test": "validation"}),
                      language_filter=LanguageFilter("id", _TYDIQA_NAMES)),
    columns=_QA_COLUMNS,
    labels=(),
    languages=tuple(_TYDIQA_NAMES),
    metric="f1",
    description="TyDiQA-GoldP: one config for 9 languages (rows picked by id prefix); "
                "trained on its English rows",
))
register(TaskSpec(
    name="bucc", role="target", format="retrieval",
    source=TaskSource("hf", "google/xtreme", "bucc18.{lang}",
                      splits=MappingProxyType({"dev": "validation", "test": "test"})),
    columns=_frozen({"source": "source_sentence", "target": "target_sentence",
                     "source_id": "source_lang", "target_id": "target_lang"}),
    labels=(),
    languages=("en", "de", "fr", "ru", "zh"),
    metric="bucc_f1",
    description="BUCC 2018 bitext mining, 4 languages paired with English; the hub rows are "
                "the gold pairs only (source_lang/target_lang hold sentence ids)",
))
register(TaskSpec(
    name="tatoeba", role="target", format="retrieval",
    source=TaskSource("hf", "google/xtreme", "tatoeba.{lang}",
                      splits=MappingProxyType({"test": "validation"}),
                      config_languages=_TATOEBA_CODES),
    columns=_frozen({"source": "source_sentence", "target": "target_sentence"}),
    labels=(),
    languages=("en", *_TATOEBA_CODES),
    metric="tatoeba_accuracy",
    description="Tatoeba sentence retrieval, 36 languages paired with English (row i <-> row i)",
))
