#!/usr/bin/env bash
# Install aiki-hooks for this user: after this, the next Claude Code session starts with
# the machine's health.
#
#   ./install.sh                     install or upgrade; safe to run again
#   ./install.sh --statusline        also register the status line (--force replaces a foreign one)
#   ./install.sh --project DIR       register the hooks in DIR/.claude/settings.json instead
#   ./install.sh --settings FILE     ... or in this settings file
#   ./install.sh --no-service        do not set up the background refresher
#   ./install.sh --with-mem0         also install mem0 delivery (the extra aiki-hooks[mem0], ~230 MB);
#                                    done anyway when your config sets [mem0] backend
#   ./install.sh --dry-run           show what would change (the settings diff); change nothing
#   ./install.sh --uninstall         remove our hooks, status line and service (--purge: also state and venv)
#   ./install.sh --plugin            build the Claude Code plugin instead of registering hooks
#   ./install.sh --help
#
# Exit status: 0 installed; 1 nothing changed (a check failed first: the message says which);
# 2 installed, but the refresher service did not start: it was taken out (no restart loop)
# and the refresher runs detached instead, with the unit's last log lines printed.
#
# It creates a venv in ${XDG_DATA_HOME:-~/.local/share}/aiki-hooks/venv with the package
# (a copy: deleting the clone breaks nothing), copies the hook scripts next to it, writes a
# commented config if you have none, merges the hooks into Claude Code's settings.json
# (every other key and hook is kept; the previous file is backed up), starts the refresher
# under systemd (or detached where there is no systemd), and shows the status block.
set -euo pipefail

# The comment block above, up to its first non-comment line.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

where=() statusline=() force=() dry_run="" uninstall="" purge="" service="yes" plugin="" with_mem0=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --project|--settings) [ $# -ge 2 ] || die "$1 needs a value"; where=("$1" "$2"); shift ;;
    --statusline) statusline=(--statusline) ;;
    --force) force=(--force) ;;
    --dry-run) dry_run=yes ;;
    --uninstall) uninstall=yes ;;
    --purge) purge=yes ;;
    --no-service) service="" ;;
    --plugin) plugin=yes ;;
    --with-mem0) with_mem0=yes ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
[ -z "$purge" ] || [ -n "$uninstall" ] || die "--purge goes with --uninstall"

src="$(cd "$(dirname "$0")" && pwd)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
data="$data_home/aiki-hooks"
venv="$data/venv"
bin_dir="$HOME/.local/bin"

find_python() {
  local candidate path
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    # The real interpreter, not a pyenv-style shim: the hooks run it on every tool call
    # and a shim costs ~100 ms each time.
    path=$("$path" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
    if "$path" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$path"; return 0
    fi
  done
  return 1
}

# The command line tool: the installed one, or this checkout's (dry runs, uninstall without
# a venv, the checks before anything is changed).
aiki() {
  if [ -x "$venv/bin/aiki-hooks" ]; then
    "$venv/bin/aiki-hooks" "$@"
  else
    PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" "${python:-$(find_python)}" -m aiki_hooks.cli "$@"
  fi
}

# Our state dir: removed whole only when it is ours alone, i.e. named for us and holding no
# home, data or config dir; a shared one (dir = "~/.local/state", say) is left alone.
state_dir_is_ours() {
  local dir="$1" base
  base=$(basename "$dir")
  case "$base" in *aiki-hooks*|*aiki_hooks*) ;; *) return 1 ;; esac
  for inside in "$HOME" "$data" "$data_home" "${XDG_CONFIG_HOME:-$HOME/.config}"; do
    case "$inside/" in "$dir"/*) return 1 ;; esac
  done
  return 0
}

# Whether the config loads (its error, one line, on stderr when not). Standard library only:
# it runs on the system's Python before the venv has the package's dependencies.
check_config() {
  local py=(env "PYTHONPATH=$src${PYTHONPATH:+:$PYTHONPATH}" "$python" -P)
  if [ -x "$venv/bin/aiki-hooks" ]; then py=("$venv/bin/python" -P); fi
  "${py[@]}" -c 'import sys
from aiki_hooks.config.load import ConfigError, load_config
try:
    load_config()
except ConfigError as exc:
    sys.exit(f"aiki-hooks: {exc.message()}")'
}

# The configured state dir (one line; the config's own error on stderr when it does not load).
aiki_state_dir() {
  check_config || return 1
  local py=(env "PYTHONPATH=$src${PYTHONPATH:+:$PYTHONPATH}" "$python")
  # -P: the installed package, not a folder named aiki_hooks in the current directory.
  if [ -x "$venv/bin/aiki-hooks" ]; then py=("$venv/bin/python" -P); fi
  "${py[@]}" -c 'from aiki_hooks.config.load import load_config; print(load_config().state_dir)'
}

# The configured mem0 backend ("off" unless the config sets one).
aiki_mem0_backend() {
  PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" "$python" -P -c \
    'from aiki_hooks.config.load import load_config; print(load_config().mem0.backend)' 2>/dev/null || echo off
}

python=$(find_python) || die "no Python >= 3.11 with the venv module found. Install one (Debian/Ubuntu: sudo apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11"

if [ -n "$uninstall" ]; then
  # Everything that can stop us is checked before anything is removed: the config (where
  # the state and a detached refresher are) and the settings file.
  state=$(aiki_state_dir) || die "cannot uninstall with this config; fix it (or move it away) and run again"
  aiki uninstall-hooks "${where[@]}" --dry-run >/dev/null || die "nothing was changed"
  aiki uninstall-hooks "${where[@]}" ${dry_run:+--dry-run}
  [ -z "$service" ] || aiki service uninstall ${dry_run:+--dry-run}
  if [ -n "$purge" ]; then
    if state_dir_is_ours "$state"; then remove_state="$state"; else remove_state=""; fi
    if [ -n "$dry_run" ]; then
      say "would remove $data${remove_state:+ and $remove_state}"
    else
      rm -rf "$data" ${remove_state:+"$remove_state"}
      if [ -L "$bin_dir/aiki-hooks" ]; then rm -f "$bin_dir/aiki-hooks"; fi
      say "removed $data${remove_state:+ and $remove_state} (your config is kept)"
    fi
    [ -n "$remove_state" ] || [ ! -e "$state" ] ||
      say "kept the state dir $state: its name does not say it is aiki-hooks' alone; remove our files there by hand"
  fi
  exit 0
fi

if [ -n "$plugin" ]; then
  target="$data/plugin-marketplace"
  if [ -n "$dry_run" ]; then say "would build the plugin in $target"; exit 0; fi
  umask 077
  mkdir -p "$data"
  PYTHONPATH="$src" "$python" -m aiki_hooks.install.plugin "$src" "$target" >/dev/null
  say "built the plugin and its marketplace in $target; now run:"
  echo "    claude plugin marketplace add $target"
  echo "    claude plugin install aiki-hooks@aiki-local --scope user"
  say "the plugin sets up its own venv and refresher on the first session (state in the plugin's data dir)"
  say "do not also register the hooks with install.sh: they would run twice (install.sh --uninstall removes ours)"
  exit 0
fi

if [ -n "$dry_run" ]; then
  say "dry run: nothing is changed"
  [ -x "$venv/bin/python" ] || say "would create $venv and install aiki-hooks into it"
  aiki install-hooks "${where[@]}" "${statusline[@]}" "${force[@]}" --dry-run --python "$venv/bin/python" \
    --hooks-dir "$data/hooks"
  [ -z "$service" ] || aiki service install --dry-run --executable "$venv/bin/aiki-hooks"
  exit 0
fi

# What can stop the install is checked before anything is changed: a settings file that
# cannot be merged (invalid JSON, ...) and a config that does not load.
if ! err=$(aiki install-hooks "${where[@]}" --dry-run --python "$venv/bin/python" --hooks-dir "$data/hooks" 2>&1 >/dev/null); then
  printf '%s\n' "$err" >&2
  die "nothing was changed"
fi
check_config || die "nothing was changed; fix the config and run again"

say "using $python ($("$python" -c 'import platform; print(platform.python_version())'))"
umask 077
mkdir -p "$data"
if [ ! -x "$venv/bin/python" ]; then
  say "creating venv $venv"
  "$python" -m venv "$venv"
fi
# mem0 delivery is an extra: only where it is asked for or the config turns it on.
if [ -z "$with_mem0" ] && [ "$(aiki_mem0_backend)" != off ]; then with_mem0=yes; fi
say "installing aiki-hooks${with_mem0:+ with mem0 delivery} into the venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --upgrade "$src${with_mem0:+[mem0]}"

# The unit's Documentation= points here: a copy (with the docs it links) that outlives the clone.
cp "$src/README.md" "$data/README.md"
rm -rf "$data/docs" && cp -R "$src/docs" "$data/docs"

mkdir -p "$bin_dir"
ln -sfn "$venv/bin/aiki-hooks" "$bin_dir/aiki-hooks"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) say "note: $bin_dir is not on your PATH; add it, or run $venv/bin/aiki-hooks" ;;
esac

config_file=$("$venv/bin/python" -c 'from aiki_hooks.paths import config_path; print(config_path())')
if [ -e "$config_file" ]; then
  say "keeping your config $config_file"
else
  aiki init | sed 's/^/==> /'
fi

aiki install-hooks "${where[@]}" "${statusline[@]}" "${force[@]}" --python "$venv/bin/python" \
  --hooks-dir "$data/hooks" | sed 's/^/==> /'
service_rc=0
if [ -n "$service" ]; then
  # --restart: the package was just reinstalled, the running refresher has the old code.
  # Exit 2: the unit would not start; it was taken out (no restart loop) and the refresher
  # runs detached instead, with the reason printed. The install goes on and says so at the end.
  aiki service install --restart --executable "$venv/bin/aiki-hooks" > >(sed 's/^/==> /') || service_rc=$?
  wait $! 2>/dev/null || true  # the sed, so its lines come before ours
  [ "$service_rc" = 0 ] || [ "$service_rc" = 2 ] || die "the service step failed (exit $service_rc); see above"
fi

say "running one refresh"
aiki refresh >/dev/null
echo
say "what the agent sees when a Claude Code session starts:"
echo
aiki preview
echo
if [ "$service_rc" = 2 ]; then
  say "installed, but the refresher runs detached, not under systemd: its service did not start (see above)."
  say "fix the cause, then: aiki-hooks service install   Checks: aiki-hooks doctor"
  exit 2
fi
say "done. Status: aiki-hooks status   Checks: aiki-hooks doctor   Config: $config_file"
