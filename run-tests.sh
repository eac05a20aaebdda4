#!/usr/bin/env bash
# Run the whole test suite. Creates a development venv (.venv-dev) on first use and
# refreshes it when pyproject.toml changes. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

venv=.venv-dev
stamp="$venv/.installed-from"
# Rebuilt when the packaging changes.
want="$(sha256sum < pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python=$(find_python) || { echo "run-tests.sh: need Python >= 3.11 with the venv module" >&2; exit 2; }
  echo "run-tests.sh: preparing $venv with $python" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e '.[test,mem0]'
  echo "$want" > "$stamp"
fi
# The end-to-end tests drive the real Claude Code CLI, pinned; installed locally once.
claude_version=2.1.328
claude_dir=.cache/claude-code
if [ ! -x "$claude_dir/node_modules/.bin/claude" ] ||
   ! "$claude_dir/node_modules/.bin/claude" --version 2>/dev/null | grep -q "^$claude_version "; then
  if command -v npm >/dev/null 2>&1; then
    echo "run-tests.sh: installing @anthropic-ai/claude-code@$claude_version into $claude_dir" >&2
    mkdir -p "$claude_dir"
    npm install --prefix "$claude_dir" --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$claude_version" >&2
  else
    echo "run-tests.sh: npm not found: the Claude Code end-to-end tests will be skipped (they fail under CI=true)" >&2
  fi
fi
# The cost reports are compared with the real ccusage (tests/costs/test_vs_ccusage.py), pinned
# like bench/costs_vs_ccusage.py; installed locally once.
ccusage_version=20.0.24
ccusage_dir=.cache/ccusage
if [ ! -x "$ccusage_dir/node_modules/.bin/ccusage" ] ||
   ! "$ccusage_dir/node_modules/.bin/ccusage" --version 2>/dev/null | grep -q "$ccusage_version\$"; then
  if command -v npm >/dev/null 2>&1; then
    echo "run-tests.sh: installing ccusage@$ccusage_version into $ccusage_dir" >&2
    mkdir -p "$ccusage_dir"
    npm install --prefix "$ccusage_dir" --no-audit --no-fund --loglevel=error "ccusage@$ccusage_version" >&2
  else
    echo "run-tests.sh: npm not found: the comparisons with ccusage will be skipped (they fail under CI=true)" >&2
  fi
fi
exec "$venv/bin/python" -m pytest "$@"
