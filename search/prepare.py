"""``xstilts prepare``: fill a node's caches so that its trials never download.

For a preset (and its ``--set`` changes), every model its space can draw is loaded
through ``from_pretrained`` (into the Hugging Face cache, ``HF_HOME``) and every
split its trials can read — each task of the space's pool as an intermediate task,
the target's training set, its evaluation sets in every language, the English dev
set — is loaded (into the ``datasets`` cache) and encoded into the token cache
(``$XSTILTS_CACHE/tokens``) once per distinct tokenizer (XLM-R base and large share
one). The splits are exactly those ``trainables.trial_data.trial_splits`` lists for
a trial that includes every task, so a prepared node runs any trial of the sweep
with ``HF_HUB_OFFLINE=1`` and ``HF_DATASETS_OFFLINE=1``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from spaces.config import TrialConfig
from spaces.models import get_model_size
from spaces.sweep import SweepConfig


@dataclass(frozen=True)
class Prepared:
    models: tuple[str, ...]
    splits: int
    seconds: float
    cache_bytes: int


def covering_config(base: TrialConfig, sweep: SweepConfig) -> TrialConfig:
    """A trial config whose data is the union of every trial's of the sweep: all of the
    space's tasks as intermediate tasks (with some intermediate training)."""
    tasks = tuple(dict.fromkeys([*sweep.space.tasks, *base.intermediate_tasks]))
    return base.replace(intermediate_tasks=tasks,
                        intermediate_steps=max(base.intermediate_steps, 1))


def prepare(base: TrialConfig, sweep: SweepConfig, *, progress: bool = True) -> Prepared:
    """Download the sweep's models and data and encode its splits; what was done."""
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    from trainables.embedded_default import resolve_checkpoint
    from trainables.retry import retry_transient
    from trainables.token_cache import entry_size_bytes, tokenizer_fingerprint
    from trainables.trial_data import load_split, trial_splits

    import datasets

    datasets.disable_progress_bars()  # one bar: ours
    t0 = time.perf_counter()
    cfg = covering_config(base, sweep)
    checkpoints = tuple(dict.fromkeys(get_model_size(m).checkpoint
                                      for m in sweep.space.model_sizes or (base.model_size,)))
    tokenizers = {}
    for checkpoint in checkpoints:
        path = resolve_checkpoint(checkpoint)
        tokenizer = retry_transient(lambda: AutoTokenizer.from_pretrained(path),
                                    what=f"tokenizer {checkpoint}")
        retry_transient(lambda: AutoModel.from_pretrained(path, add_pooling_layer=False),
                        what=f"model {checkpoint}")
        tokenizers.setdefault(tokenizer_fingerprint(tokenizer), tokenizer)
    requests = trial_splits(cfg)
    bar = tqdm(total=len(requests) * len(tokenizers), unit="split", disable=not progress,
               file=sys.stderr, desc="xstilts prepare")
    for tokenizer in tokenizers.values():
        tag_names: dict[str, tuple[str, ...]] = {}
        for request in requests:
            bar.set_postfix_str(f"{request.task}/{request.split}/{request.language}")
            load_split(request, cfg, tokenizer, tag_names)
            bar.update()
    bar.close()
    return Prepared(checkpoints, len(requests) * len(tokenizers),
                    time.perf_counter() - t0, entry_size_bytes())
