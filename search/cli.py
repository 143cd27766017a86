"""The ``xstilts`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from spaces.config import ConfigError
from spaces.presets import load_preset, preset_names


class UsageError(Exception):
    """Bad input from the command line: printed as one message, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except (UsageError, ConfigError, KeyError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"xstilts: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xstilts: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xstilts", description=(
        "Search over English intermediate tasks, mixing weights and model sizes for the best "
        "and best-calibrated zero-shot cross-lingual transfer (X-STILTs)."))
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("trial", help="train and score one configuration",
                       description="Run one trial (phase 2 intermediate tasks, phase 3 target, "
                                   "zero-shot evaluation) through Ray Train and print its scores.")
    t.add_argument("preset", help=f"a shipped preset ({', '.join(preset_names())}) or a YAML file")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial-config key, e.g. --set seed=3 --set intermediate_tasks=[a,b]")
    t.add_argument("--storage", default="xstilts-runs",
                   help="folder (or pyarrow URI) for checkpoints (default: ./xstilts-runs)")
    t.add_argument("--name", default=None, help="run name (default: trial-CONFIGHASH-TIME)")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    t.set_defaults(func=_cmd_trial)
    return p


def _cmd_trial(args: argparse.Namespace) -> int:
    config = load_preset(args.preset).trial_config(args.overrides)
    storage = _storage_path(args.storage)
    name = args.name or f"trial-{config.config_hash()}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"xstilts: trial {name}: target {config.target}, intermediate "
          f"{', '.join(config.intermediate_tasks) or '(none)'}, model {config.model_size}",
          flush=True)

    from ray.train import TrainingFailedError

    from search.local_ray import ensure_ray
    from trainables.trial import run_trial

    ensure_ray()
    try:
        result = run_trial(config, storage_path=storage, name=name)
    except TrainingFailedError as exc:
        print(f"xstilts: trial failed: {_root_cause(exc)}", file=sys.stderr)
        return 1
    metrics = result.metrics or {}
    if args.json:
        import json

        print(json.dumps({"name": name, "config": config.to_dict(), "metrics": metrics},
                         indent=2, default=str))
    else:
        print(format_language_table(metrics, train_language=_train_language(config.target),
                                    weight=config.objective_weight))
        print(f"checkpoints: {result.path}")
    return 0


def format_language_table(metrics: Mapping[str, Any], *, train_language: str, weight: float) -> str:
    """The per-language accuracy/ECE table and the objective, as printed by ``trial``."""
    langs = [k.split("/")[0] for k in metrics if k.endswith("/accuracy")]
    lines = [f"{'language':<10}{'accuracy':>10}{'ECE':>8}{'ECE(TS)':>9}  role"]
    for lang in langs:
        role = "train (English dev)" if lang == train_language else "zero-shot"
        lines.append(f"{lang:<10}{metrics[f'{lang}/accuracy']:>10.3f}{metrics[f'{lang}/ece']:>8.3f}"
                     f"{metrics[f'{lang}/ece_ts']:>9.3f}  {role}")
    lines.append(f"{'zero-shot':<10}{metrics['zs_accuracy']:>10.3f}{metrics['zs_ece']:>8.3f}"
                 f"{metrics['zs_ece_ts']:>9.3f}  macro mean")
    lines.append(f"objective: score = zs_accuracy - {weight:g} * zs_ece = {metrics['score']:.4f}"
                 f"   (temperature fitted on English dev: {metrics['temperature']:.3f})")
    return "\n".join(lines)


def _train_language(target: str) -> str:
    from spaces.tasks import get_task

    return get_task(target).train_language


def _storage_path(raw: str) -> str:
    if "://" in raw:
        return raw
    path = Path(raw).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--storage {raw!r} cannot be created ({exc.strerror}); "
                         "give a writable folder") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"--storage {raw!r} is not writable; give a writable folder")
    return str(path)


def _root_cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    errors = [line for line in text if "Error:" in line and not line.startswith(" ")]
    return errors[-1] if errors else (text[-1] if text else type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
