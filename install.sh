#!/usr/bin/env bash
# Install aiki-hooks for this user and show the machine's health.
#
#   ./install.sh            install (or upgrade) and print the status
#   ./install.sh --help
#
# What it does:
#   1. finds a Python >= 3.11 and creates a venv in ${XDG_DATA_HOME:-~/.local/share}/aiki-hooks/venv
#   2. installs this package into it (a real copy: deleting the clone breaks nothing)
#   3. links ~/.local/bin/aiki-hooks to the venv's command
#   4. writes a commented config with the services it detects, unless one exists
#   5. runs one refresh and prints the status
# Registering the Claude Code hooks and the systemd unit comes in a later release.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

src="$(cd "$(dirname "$0")" && pwd)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
venv="$data_home/aiki-hooks/venv"
bin_dir="$HOME/.local/bin"

find_python() {
  local candidate path
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    # Resolve pyenv-style shims to the real interpreter: the hooks will call it on
    # every tool use and a shim costs ~100 ms each time.
    path=$("$path" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
    if "$path" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$path"; return 0
    fi
  done
  return 1
}

python=$(find_python) || die "no Python >= 3.11 with the venv module found. Install one (Debian/Ubuntu: sudo apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11"
say "using $python ($("$python" -c 'import platform; print(platform.python_version())'))"

umask 077
mkdir -p "$data_home/aiki-hooks"
if [ ! -x "$venv/bin/python" ]; then
  say "creating venv $venv"
  "$python" -m venv "$venv"
fi
say "installing aiki-hooks into the venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --upgrade "$src"

mkdir -p "$bin_dir"
ln -sfn "$venv/bin/aiki-hooks" "$bin_dir/aiki-hooks"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) say "note: $bin_dir is not on your PATH; add it, or run $venv/bin/aiki-hooks" ;;
esac

aiki="$venv/bin/aiki-hooks"
config_file=$("$venv/bin/python" -c 'from aiki_hooks.paths import config_path; print(config_path())')
if [ -e "$config_file" ]; then
  say "keeping your config $config_file"
else
  "$aiki" init | sed 's/^/==> /'
fi

say "running one refresh"
"$aiki" refresh >/dev/null
echo
rc=0
"$aiki" status || rc=$?
echo
say "done. Status: aiki-hooks status   Checks: aiki-hooks doctor   Config: $config_file"
say "keep it fresh in the background with: aiki-hooks refresher"
# The status exit code reports the machine's health, not the install: the install succeeded.
[ "$rc" -le 3 ] && exit 0 || exit "$rc"
