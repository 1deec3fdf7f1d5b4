#!/usr/bin/env bash
# Set up .venv if missing, install payretry with its test extras, then run ruff, mypy,
# import-linter and pytest.
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
echo "== ruff"
.venv/bin/ruff check payretry tests scripts
echo "== mypy (strict)"
.venv/bin/mypy
echo "== import-linter (the layers of the house)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
.venv/bin/pytest "$@"
