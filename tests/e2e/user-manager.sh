#!/bin/sh
# user-manager.sh HOME_DIR: a real systemd user manager and journald for the end-to-end tests.
#
# Runs `systemd --user` and `systemd-journald` in a private mount namespace, with a fresh tmpfs on
# /run (and /var/log/journal, and /home), so nothing is seen outside and nothing is left behind.
# HOME_DIR (a test's throwaway home) is bind-mounted at /home/aiki-tester, which is the manager's
# HOME: the unit's ProtectHome=, ReadWritePaths= and PrivateTmp= then act as on a desktop, where a
# home is not under /tmp. Units are read from /home/aiki-tester/.config/systemd/user.
#
# Once the manager runs it prints "ready PID": run commands inside with `nsenter -m -t PID CMD`
# (with XDG_RUNTIME_DIR=/run/user/0). It stops every unit and exits when its stdin is closed.
# Needs root (unshare -m) and systemd (Debian: the systemd package); where either is missing it
# prints why on stderr and exits 77. Runs are serialised with the same lock as the recipe this
# follows (two managers would share the host's cgroup tree). The manager's own log: $USER_MANAGER_LOG.
set -u
[ $# -eq 1 ] || { echo "usage: user-manager.sh HOME_DIR" >&2; exit 2; }
manager=/lib/systemd/systemd journald=/lib/systemd/systemd-journald
[ -x "$manager" ] && [ -x "$journald" ] || { echo "user-manager.sh: systemd is not installed" >&2; exit 77; }
[ "$(id -u)" = 0 ] || { echo "user-manager.sh: needs root (a private mount namespace)" >&2; exit 77; }
if [ "${USER_MANAGER_INNER:-}" != 1 ]; then
  unshare -m --propagation private true 2>/dev/null || { echo "user-manager.sh: unshare -m is not permitted here" >&2; exit 77; }
  USER_MANAGER_INNER=1 exec flock -E 77 -w "${USER_MANAGER_WAIT:-900}" /tmp/with-systemd-user.lock \
    unshare -m --propagation private "$0" "$@"
fi

home=/home/aiki-tester
log="${USER_MANAGER_LOG:-/dev/null}"
mount -t tmpfs -o mode=755 tmpfs /run || exit 77
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
mount -t tmpfs -o mode=755 tmpfs /home || exit 77
mkdir -p "$home" /run/systemd/system /run/systemd/journal /run/user/0
mount --bind "$1" "$home" || exit 77
chmod 700 /run/user/0
"$journald" >>"$log" 2>&1 &
journald_pid=$!
# The manager connects itself and every unit's output to journald's sockets: start it only
# once they exist (on a loaded machine journald can be slower to bind them than the manager).
i=0
until [ -S /run/systemd/journal/stdout ] && [ -S /run/systemd/journal/socket ]; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then
    echo "user-manager.sh: journald did not start" >&2
    kill $journald_pid 2>/dev/null; exit 77
  fi
  sleep 0.1
done
# A clean environment, as a login would give: the tests' own variables must not reach the units.
env -i HOME="$home" USER=root LOGNAME=root PATH="$PATH" LANG=C.UTF-8 XDG_RUNTIME_DIR=/run/user/0 \
  "$manager" --user >>"$log" 2>&1 &
manager_pid=$!
export XDG_RUNTIME_DIR=/run/user/0
i=0
until state=$(systemctl --user is-system-running 2>/dev/null); [ "$state" = running ] || [ "$state" = degraded ]; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then
    echo "user-manager.sh: the user manager did not start (state: ${state:-none})" >&2
    kill $manager_pid $journald_pid 2>/dev/null; exit 77
  fi
  sleep 0.1
done
echo "ready $$"
cat >/dev/null  # until the test closes our stdin
# exit.target stops every unit (also those started by hand), then the manager exits.
systemctl --user exit >/dev/null 2>&1
i=0
while kill -0 $manager_pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $manager_pid 2>/dev/null; wait $manager_pid 2>/dev/null
kill $journald_pid 2>/dev/null; wait $journald_pid 2>/dev/null
exit 0
