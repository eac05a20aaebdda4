#!/usr/bin/env python3
"""Hostile commands and receivers (issue 13, items 4, 7 and 8), measured in one run.

1. Peak RSS and run time of the real `aiki-hooks refresh` whose only probe is a command
   that floods stdout (`yes`) or stderr, against the same refresh with a quiet command
   (the baseline). Peak RSS is the child's ru_maxrss from wait4(); its address space is
   capped at 4 GiB so a regression cannot take the machine down.
2. Processes left behind by a command probe that times out after starting children
   that leave its process group (setsid) or its parent chain (a setsid orphan).
3. A webhook receiver on 127.0.0.1 that trickles its answer one byte every 0.2 s: the
   seconds until the POST is abandoned, against `timeout_seconds`.

Usage: python3 bench/hostile_output.py [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ADDRESS_SPACE_CAP = 4 * 1024**3


def refresh(home: Path, command: list[str], timeout: float) -> tuple[int, float, float, dict]:
    """(exit code, seconds, peak RSS MiB, the probe's cached result) of one real refresh."""
    state = home / "state"
    config = home / "config.toml"
    config.write_text(f'[state]\ndir = "{state}"\n[resources]\nenabled = false\n[costs]\nenabled = false\n'
                      f'[[probes.command]]\nname = "noisy"\ncommand = {json.dumps(command)}\n'
                      f"timeout_seconds = {timeout}\n")
    env = {**os.environ, "HOME": str(home), "AIKI_HOOKS_CONFIG": str(config), "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "aiki_hooks.cli", "refresh"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP)))
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    data = json.loads((state / "system_health.json").read_text())
    (probe,) = [p for p in data["probes"] if p["name"] == "noisy"]
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, probe


def alive_with(token: str) -> list[int]:
    """Pids of the processes (not zombies) whose command line holds *token*."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if token in cmdline and state != "Z":
            found.append(int(entry))
    return found


def trickling_receiver(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Padding: " + b"." * 200 + b"\r\n\r\nok"
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for index in range(len(answer)):
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(answer[index:index + 1])
                except OSError:
                    return  # abandoned by the client

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="timeout_seconds of the probes and the webhook")
    args = parser.parse_args()
    timeout = args.timeout

    print(f"1. command output (probe timeout {timeout:g} s)")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        baseline = None
        for label, command in (("quiet (baseline)", ["sh", "-c", "echo 'OK - quiet'"]),
                               ("flood on stdout", ["yes"]),
                               ("flood on stderr", ["sh", "-c", "yes >&2"])):
            code, seconds, peak, probe = refresh(home, command, timeout)
            baseline = peak if baseline is None else baseline
            extra = "" if peak == baseline else f" (+{peak - baseline:.1f} MiB)"
            print(f"   {label:18} exit {code}  {seconds:5.2f} s  peak RSS {peak:6.1f} MiB{extra}  "
                  f"-> {probe['status']} {probe['error_kind'] or ''}".rstrip())

    print("2. processes left after a command probe times out (timeout 1 s)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, script in (("setsid child", "setsid sleep {t} & sleep {t}"),
                              ("setsid orphan", "(setsid sleep {t} &); sleep {t}")):
            token = f"300.{uuid.uuid4().int % 10**9:09d}"
            _, seconds, _, probe = refresh(Path(tmp), ["sh", "-c", script.format(t=token)], 1.0)
            time.sleep(0.2)
            left = alive_with(token)
            print(f"   {label:18} {seconds:5.2f} s  -> {probe['error_kind']}; processes left: {len(left)}")
            for pid in left:  # a regression's leftovers, found by this run's unique token
                os.kill(pid, signal.SIGKILL)

    print(f"3. webhook against a receiver trickling one byte every 0.2 s (timeout_seconds {timeout:g})")
    from aiki_hooks.outputs.formats import JSON_HEADERS
    from aiki_hooks.outputs.router import DeliveryError, post

    stop = threading.Event()
    listener, thread = trickling_receiver(stop)
    started = time.monotonic()
    try:
        post(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", b"{}", [], timeout, content_headers=JSON_HEADERS)
        outcome = "delivered"
    except DeliveryError as exc:
        outcome = str(exc)
    took = time.monotonic() - started
    stop.set()
    thread.join()
    listener.close()
    print(f"   abandoned after {took:.2f} s (timeout_seconds {timeout:g}): {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
