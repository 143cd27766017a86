#!/usr/bin/env bash
# Debian's Chromium for the report's browser test (tests/browser.py): installed when it is
# missing and this user can (root, apt-get); otherwise a line says why and the browser
# tests skip (CI sets XSTILTS_REQUIRE_BROWSER=1, so there they fail instead).
set -euo pipefail
[ -n "${XSTILTS_CHROMIUM:-}" ] && exit 0
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "xstilts: installing Debian's chromium for the report's browser test" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  command -v chromium >/dev/null || { echo "xstilts: chromium did not install" >&2; exit 1; }
else
  echo "xstilts: no chromium and no root to install it (apt-get install chromium); the " \
       "browser tests will skip" >&2
fi
