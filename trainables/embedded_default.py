"""The embedded default: a tiny XLM-R and the demo suite, built offline, cached.

The tiny model is an ordinary HF model directory (config, weights, a Unigram
tokenizer trained locally on the suite's text), so it loads through the same
``from_pretrained`` path as ``FacebookAI/xlm-roberta-base``. Builds are
deterministic and go to a temporary folder renamed into place, under a file
lock, so concurrent Ray workers never see a half-built cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from spaces.models import EMBEDDED_TINY
from trainables import demo_suite

log = logging.getLogger(__name__)

TINY_VERSION = "2"  # 2: ids of its tokenizer no longer vary between builds
TINY_ARCH = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=130)
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def cache_root() -> Path:
    """``$XSTILTS_CACHE`` or ``~/.cache/xstilts``."""
    return Path(os.environ.get("XSTILTS_CACHE", Path.home() / ".cache" / "xstilts"))


def _build_once(name: str, build) -> Path:
    final = cache_root() / name
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
        try:
            build(tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("built %s", final)
    return final


def demo_suite_dir() -> Path:
    """The demo suite's folder (built on first use)."""
    return _build_once(f"demo-suite-v{demo_suite.SUITE_VERSION}", demo_suite.write_suite)


def tiny_model_dir() -> Path:
    """The tiny XLM-R model folder (built on first use)."""
    return _build_once(f"tiny-xlmr-v{TINY_VERSION}-suite{demo_suite.SUITE_VERSION}", _build_tiny)


def resolve_checkpoint(checkpoint: str) -> str:
    """Map the embedded id to its folder; HF ids and paths pass through."""
    return str(tiny_model_dir()) if checkpoint == EMBEDDED_TINY else checkpoint


def canonical_pieces(trained: list[list]) -> list[tuple[str, float]]:
    """The trainer's pieces (specials left out) in an order and with scores that do not
    depend on the run: scores rounded to 1e-3, ties ordered by piece.

    The Unigram trainer gives the characters it must keep, but did not learn, the
    lowest score plus k·1e-4, k in the order of a Rust hash set, which changes from run
    to run (here 'c' and 'q' swapped ids in half the builds). Rounding to 1e-3 makes
    them one tie, ordered by piece; it also absorbs the last digits in which the
    trainer's float reductions vary.
    """
    pieces = ((p, round(float(s), 3)) for p, s in trained if p not in _SPECIALS)
    return sorted(pieces, key=lambda ps: (-ps[1], ps[0]))


def _build_tiny(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    raw = Tokenizer(models.Unigram())
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁")]
    )
    trainer = trainers.UnigramTrainer(vocab_size=1200, special_tokens=_SPECIALS,
                                      unk_token="<unk>", show_progress=False)
    # one thread: the Unigram trainer's parallel reductions vary in their last digits
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    raw.train_from_iterator(demo_suite.corpus(demo_suite_dir()), trainer=trainer)
    trained = json.loads(raw.to_str())["model"]["vocab"]
    vocab = [(p, 0.0) for p in _SPECIALS] + canonical_pieces(trained)
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    tokenizer.model_max_length = TINY_ARCH["max_position_embeddings"] - 2
    tokenizer.save_pretrained(out)

    config = XLMRobertaConfig(vocab_size=len(vocab), pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, type_vocab_size=1, **TINY_ARCH)
    torch.manual_seed(0)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()[:12]
    (out / "BUILD").write_text(f"tiny xlm-r v{TINY_VERSION}, weights sha256 {digest}\n")
