#!/usr/bin/env bash
# The test suite: install if needed (the Python packages; Debian's chromium for the browser
# test), then pytest (benchmarks are scripts, not tests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/browser.sh
# -X faulthandler: a crash after pytest's own handler is gone (in the interpreter's exit)
# still prints every thread's Python stack
exec python -X faulthandler -m pytest -q --durations=8 "$@"
