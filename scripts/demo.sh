#!/usr/bin/env bash
# The main job on the embedded default: install if needed, then run the demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec xstilts trial demo "$@"
