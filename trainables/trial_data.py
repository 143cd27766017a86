"""Everything a trial reads, loaded and encoded once: intermediate and target
training sets, the evaluation sets of every language, the English dev set that
fits the temperature, and the tag vocabularies its heads need.

Plain functions of a ``TrialConfig`` and a tokenizer (no Ray), so tests load
exactly what a trial loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spaces.config import TrialConfig
from spaces.tasks import TaskSpec, get_task
from trainables.data import load_rows
from trainables.encoding import EncodedSplit, encode, tag_vocabulary


@dataclass
class TrialData:
    target: TaskSpec
    inter_train: dict[str, EncodedSplit]
    #: None for retrieval targets, which are scored without target training
    target_train: EncodedSplit | None
    #: language -> its evaluation set (empty where this rank does not score)
    eval_sets: dict[str, EncodedSplit] = field(default_factory=dict)
    #: the English dev set the temperature is fitted on (None: no scoring or retrieval)
    en_dev: EncodedSplit | None = None
    #: tagging task -> its tag names (CCG's come from its training file)
    tag_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def num_labels(self) -> dict[str, int]:
        return {n: len(v) for n, v in self.tag_names.items()}


def eval_split(task: TaskSpec, wanted: str) -> str:
    """``wanted``, or the task's other evaluation split where it lacks it (XQuAD,
    TyDiQA-GoldP and Tatoeba publish only test)."""
    if wanted in task.source.splits:
        return wanted
    return next(s for s in ("test", "dev") if s in task.source.splits)


def load_trial_data(cfg: TrialConfig, tokenizer, *, scoring: bool = True) -> TrialData:
    """The data of one trial; ``scoring=False`` (ranks other than 0) skips evaluation sets."""
    target = get_task(cfg.target)
    inters = [get_task(t) for t in cfg.intermediate_tasks] if cfg.intermediate_steps else []
    trains_target = target.format != "retrieval"  # retrieval scores the encoder as it is
    # XQuAD and MLQA train on SQuAD, under their own head
    source = get_task(target.train_task) if target.train_task else target
    tag_names = {t.name: tag_vocabulary(t, load_rows(t, "train", t.train_language))
                 for t in inters + [target] if t.format == "tagging"}

    def load(task: TaskSpec, split: str, lang: str, limit: int, head: str | None = None):
        return encode(task, load_rows(task, split, lang), tokenizer, max_length=cfg.max_length,
                      limit=limit, max_query_length=min(64, cfg.max_length // 4),
                      label_names=tag_names.get(head or task.name))

    data = TrialData(
        target=target,
        inter_train={t.name: load(t, "train", t.train_language, cfg.max_train_examples)
                     for t in inters},
        target_train=load(source, "train", target.train_language, cfg.max_train_examples,
                          head=target.name) if trains_target else None,
        tag_names=tag_names)
    if not scoring:
        return data
    split = eval_split(target, cfg.eval_split)
    en = target.train_language
    languages = [lang for lang in cfg.eval_languages or target.languages
                 if trains_target or lang != en]  # retrieval pairs each language with English
    data.eval_sets = {lang: load(target, split, lang, cfg.max_eval_examples) for lang in languages}
    if trains_target:  # English dev fits the temperature (and is scored when it is eval's split)
        dev_task, dev_split = (source, "dev") if "dev" in source.source.splits else (target, split)
        same = (dev_task, dev_split) == (target, split) and en in data.eval_sets
        data.en_dev = data.eval_sets[en] if same else \
            load(dev_task, dev_split, en, cfg.max_eval_examples, head=target.name)
    return data
