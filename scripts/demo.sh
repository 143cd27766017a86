#!/usr/bin/env bash
# The main job on the embedded default: install if needed, then a demo sweep and its report
# (the page's path is the last line).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
name="demo-$(date +%Y%m%d-%H%M%S)"
xstilts run demo --storage xstilts-runs --name "$name" "$@"
xstilts report "xstilts-runs/$name"
