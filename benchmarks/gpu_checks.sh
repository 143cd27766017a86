#!/usr/bin/env bash
# The issue checks that need a GPU, run on the device machine after `bash ../shared/gpu/prepare.sh`
# (carry .gpu): the same package set as .gpu/check.sh, then bf16 against fp32 evaluation on the
# demo target (issue 16) for three seeds. Output also goes to $OUT/gpu-issue-checks.txt.
set -u
OUT=${OUT:-$(mktemp -d)}; log="$OUT/gpu-issue-checks.txt"
exec > >(tee -a "$log") 2>&1
site=$(mktemp -d)
tar -xJf .gpu/pack/ray312-slim.tar.xz -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .gpu/pack/*.whl
export PYTHONPATH="$site:$PWD" RAY_DEDUP_LOGS=0 RAY_USAGE_STATS_ENABLED=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for seed in 0 1 2; do
  echo "== eval_bf16 seed $seed"
  timeout 100 python3 benchmarks/eval_bf16.py --device cuda --seed "$seed" || echo "(exit $?)"
done
echo "gpu issue checks done"
