#!/usr/bin/env bash
# The main job on the embedded default: install if needed, then a demo sweep.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec xstilts run demo --storage xstilts-runs --name "demo-$(date +%Y%m%d-%H%M%S)" "$@"
