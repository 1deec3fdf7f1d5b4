#!/usr/bin/env bash
# Set up .venv if missing, install payretry with its test extras (and Debian's chromium for the
# browser tests, when missing and run as root), then run ruff, mypy, import-linter and pytest.
# Idempotent: the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.payretry-test-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  touch "$stamp"
fi
# The browser tests drive Debian's Chromium (never a downloaded browser): install it when missing.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
  else
    echo "warning: /usr/bin/chromium is missing; the browser tests will skip (CI: fail)" >&2
  fi
fi
echo "== ruff"
.venv/bin/ruff check payretry tests scripts
echo "== mypy (strict)"
.venv/bin/mypy
echo "== import-linter (the layers of the house)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
.venv/bin/pytest "$@"
