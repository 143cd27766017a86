"""Everything a trial reads: intermediate and target training sets, the evaluation
sets of every language, the English dev set that fits the temperature, and the tag
vocabularies its heads need, each from the node's token cache
(``trainables.token_cache``: encoded once per node, memory-mapped by every trial).

Plain functions of a ``TrialConfig`` and a tokenizer (no Ray), so tests load
exactly what a trial loads, and ``xstilts prepare`` fills the cache with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from spaces.config import TrialConfig
from spaces.tasks import TaskSpec, get_task
from trainables.encoding import EncodedSplit, EncodedTags
from trainables.token_cache import encoded_split


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
    #: BUCC: language -> its dev split, where the F1 threshold and the Platt scaling of
    #: the margin are fitted before test is scored
    fit_sets: dict[str, EncodedSplit] = field(default_factory=dict)
    #: out-of-domain set -> language -> its evaluation set (``TrialConfig.ood_targets``)
    ood_sets: dict[str, dict[str, EncodedSplit]] = field(default_factory=dict)
    #: tagging task -> its tag names (CCG's come from its training file)
    tag_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the target probe's evaluation sets and English dev set (``trainables.probe``): the
    #: first ``probe_eval_examples`` of each (the full sets where those are no larger)
    probe_sets: dict[str, EncodedSplit] = field(default_factory=dict)
    probe_dev: EncodedSplit | None = None

    @property
    def num_labels(self) -> dict[str, int]:
        return {n: len(v) for n, v in self.tag_names.items()}

    def batch_shapes(self) -> dict[str, tuple[int, int]]:
        """Per training head: (sequences per example, tokens of its longest sequence) —
        the widest batch each task can make, which sizes the trial's GPU memory."""
        splits = {**self.inter_train,
                  **({self.target.name: self.target_train} if self.target_train else {})}
        return {name: (getattr(split, "choices", 1), split.longest())
                for name, split in splits.items()}


#: retrieval targets whose scoring is fitted on dev (BUCC: the F1 threshold, the Platt
#: scaling of the margin): they always score test
FITTED_ON_DEV = frozenset({"bucc_f1"})


def eval_split(task: TaskSpec, wanted: str) -> str:
    """``wanted``, or the task's other evaluation split where it lacks it (XQuAD,
    TyDiQA-GoldP and Tatoeba publish only test); test for a target whose scoring is
    fitted on dev (BUCC)."""
    if task.metric in FITTED_ON_DEV and {"dev", "test"} <= set(task.source.splits):
        return "test"
    if wanted in task.source.splits:
        return wanted
    return next(s for s in ("test", "dev") if s in task.source.splits)


@dataclass(frozen=True)
class SplitRequest:
    """One encoded split a trial reads, and where it goes in ``TrialData``."""

    #: ``inter_train``, ``target_train``, ``eval``, ``en_dev``, ``fit`` (BUCC's dev),
    #: ``ood`` (an out-of-domain set), ``probe_eval``, ``probe_dev``
    role: str
    task: str
    split: str
    language: str
    limit: int
    #: the head whose tag names a tagging split takes
    head: str
    #: whether scoring reads it (span-QA offsets, gold tags per word are kept)
    evaluation: bool


def trial_splits(cfg: TrialConfig, *, scoring: bool = True) -> list[SplitRequest]:
    """Every split a trial of ``cfg`` reads, in load order (training splits first: a
    tagging head's names come with its training split), each once: where the English dev
    set is the English evaluation set it is listed as that only (``load_trial_data`` uses
    it for both); ``xstilts prepare`` walks it."""
    target = get_task(cfg.target)
    inters = [get_task(t) for t in cfg.intermediate_tasks] if cfg.intermediate_steps else []
    trains_target = target.format != "retrieval"  # retrieval scores the encoder as it is
    # XQuAD and MLQA train on SQuAD, under their own head
    source = get_task(target.train_task) if target.train_task else target
    out = [SplitRequest("inter_train", t.name, "train", t.train_language, cfg.max_train_examples,
                        t.name, False) for t in inters]
    if trains_target:
        out.append(SplitRequest("target_train", source.name, "train", target.train_language,
                                cfg.max_train_examples, target.name, False))
    if not scoring:
        return out
    split = eval_split(target, cfg.eval_split)
    en = target.train_language
    languages = [lang for lang in cfg.eval_languages or target.languages
                 if trains_target or lang != en]  # retrieval pairs each language with English
    out += [SplitRequest("eval", target.name, split, lang, cfg.max_eval_examples, target.name,
                         True) for lang in languages]
    for name in cfg.ood_targets:  # scored by the target's head, in the languages they share
        ood = get_task(name)
        out += [SplitRequest("ood", ood.name, eval_split(ood, cfg.eval_split), lang,
                             cfg.max_eval_examples, target.name, True)
                for lang in languages if lang in ood.languages]
    if target.metric in FITTED_ON_DEV and split == "test":
        out += [SplitRequest("fit", target.name, "dev", lang, cfg.max_eval_examples, target.name,
                             True) for lang in languages]
    if trains_target:  # English dev fits the temperature (and is scored when it is eval's split)
        dev_task, dev_split = (source, "dev") if "dev" in source.source.splits else (target, split)
        if not ((dev_task, dev_split) == (target, split) and en in languages):
            out.append(SplitRequest("en_dev", dev_task.name, dev_split, en, cfg.max_eval_examples,
                                    target.name, True))
    return out + _probe_splits(cfg, out)


def _probe_splits(cfg: TrialConfig, scored: list[SplitRequest]) -> list[SplitRequest]:
    """The probe's copies of the evaluation requests, cut to ``probe_eval_examples``; none
    where the probe is off or would read the same rows as the evaluation."""
    limit = cfg.probe_eval_examples
    if not cfg.probe_steps or (cfg.max_eval_examples and cfg.max_eval_examples <= limit):
        return []
    roles = {"eval": "probe_eval", "en_dev": "probe_dev"}
    return [dataclasses.replace(r, role=roles[r.role], limit=limit)
            for r in scored if r.role in roles]


def load_split(request: SplitRequest, cfg: TrialConfig, tokenizer,
               tag_names: dict[str, tuple[str, ...]]) -> EncodedSplit:
    """One requested split from the token cache (built there on a miss); a tagging
    split's names go into ``tag_names`` for the splits of its head that follow."""
    encoded = encoded_split(get_task(request.task), request.split, request.language, tokenizer,
                            max_length=cfg.max_length, limit=request.limit,
                            max_query_length=min(64, cfg.max_length // 4),
                            label_names=tag_names.get(request.head),
                            evaluation=request.evaluation)
    if isinstance(encoded, EncodedTags):  # CCG's tag names come with its training split
        tag_names.setdefault(request.head, encoded.label_names)
    return encoded


def load_trial_data(cfg: TrialConfig, tokenizer, *, scoring: bool = True) -> TrialData:
    """The data of one trial; ``scoring=False`` (ranks other than 0) skips evaluation sets."""
    data = TrialData(target=get_task(cfg.target), inter_train={}, target_train=None)
    for request in trial_splits(cfg, scoring=scoring):
        encoded = load_split(request, cfg, tokenizer, data.tag_names)
        if request.role == "inter_train":
            data.inter_train[request.task] = encoded
        elif request.role == "target_train":
            data.target_train = encoded
        elif request.role == "eval":
            data.eval_sets[request.language] = encoded
        elif request.role == "en_dev":
            data.en_dev = encoded
        elif request.role == "fit":
            data.fit_sets[request.language] = encoded
        elif request.role == "ood":
            data.ood_sets.setdefault(request.task, {})[request.language] = encoded
        elif request.role == "probe_eval":
            data.probe_sets[request.language] = encoded
        else:
            data.probe_dev = encoded
    if data.en_dev is None and data.target_train is not None and scoring:
        data.en_dev = data.eval_sets[data.target.train_language]  # English dev is eval's split
    if scoring and not data.probe_sets:  # the evaluation sets are no larger than the probe's
        data.probe_sets, data.probe_dev = data.eval_sets, data.en_dev
    elif data.probe_dev is None and data.target_train is not None and scoring:
        data.probe_dev = data.probe_sets[data.target.train_language]
    return data
