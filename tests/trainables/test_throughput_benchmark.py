"""The throughput benchmark's CPU mode runs (the code path of its GPU mode), and its
FLOP formula counts the parameters the model has."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import throughput  # noqa: E402


def test_non_embedding_params_are_the_encoder_layers_parameters():
    from transformers import XLMRobertaConfig, XLMRobertaModel

    for dims in throughput.DIMS.values():
        small = {**dims, "num_hidden_layers": 1}  # one layer of base/large: same shapes
        config = XLMRobertaConfig(vocab_size=100, **small)
        layers = XLMRobertaModel(config, add_pooling_layer=False).encoder
        assert throughput.non_embedding_params(config) == sum(p.numel() for p in layers.parameters())
    ids = [[1] * 10, [1] * 30]
    config = throughput.encoder_config("base")
    expected = 6 * throughput.non_embedding_params(config) + 12 * 12 * 768 * (100 + 900) / 40
    assert np.isclose(throughput.flops_per_token(config, ids), expected)


def test_synthetic_pairs_look_like_mnli():
    ids = throughput.synthetic_pairs(5000, vocab=1000)
    lengths = np.array([len(x) for x in ids])
    assert 38 <= lengths.mean() <= 50 and lengths.min() >= 12 and lengths.max() <= 128
    assert all(x[0] == 0 and x[-1] == 2 and x.count(2) == 3 for x in ids[:100])


def test_cpu_mode_runs_all_three_setups():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--cpu", "--seconds", "2",
         "--warmup", "2", "--examples", "2000"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r"^  \((a|b|c)\) .*?([\d,]+) real tokens/s\s+([\d,.]+) examples/s\s+MFU\s+"
                      r"([\d.]+) %", out.stdout, flags=re.M)
    assert [r[0] for r in rows] == ["a", "b", "c"], out.stdout
    for _, tokens, examples, mfu in rows:
        assert float(tokens.replace(",", "")) > 0 and float(examples.replace(",", "")) > 0
        assert 0 < float(mfu) < 100
    assert "MFLOP per real token (6·N + 12·L·h·Σs²/Σs)" in out.stdout
