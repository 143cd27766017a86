#!/usr/bin/env bash
# Create .venv and install xstilts with its test and report extras, pinned by constraints.txt
# (the local CPU torch wheel). Re-installs only when pyproject.toml or
# constraints.txt changed. Sourced by demo.sh and test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-$(command -v python3.11 || command -v python3.12 || command -v python3)}"
stamp="$venv/.xstilts-installed"
want="$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha256sum | cut -c1-16)"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "xstilts: installing into $venv (first run takes a few minutes)" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      -c "$root/constraints.txt" -e "$root[test,report]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -c "import torch, ray, optuna, transformers, datasets, pyarrow, matplotlib" \
      || { echo "xstilts: install failed; see the pip output above" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
