#!/usr/bin/env bash
# The test suite: install if needed, then pytest (benchmarks are scripts, not tests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python -m pytest -q --durations=8 "$@"
