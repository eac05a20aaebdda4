"""sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. Silent when unset."""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, env=None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID, when set, names the process the watchdog applies to.
        applies = not pid or pid == str(os.getpid())
        self.watchdog_seconds = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and applies else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall("\n".join(fields).encode("utf-8", "replace"))
            return True
        except OSError:
            return False  # systemd gone or socket vanished: nothing useful to do

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def watchdog(self, status: str | None = None) -> None:
        fields = ["WATCHDOG=1"]
        if status:
            fields.append(f"STATUS={status}")
        self.notify(*fields)

    def stopping(self) -> None:
        self.notify("STOPPING=1")


# Syslog priorities (sd-daemon(3)): a line written as "<N>text" to a stream that systemd
# connected to journald is stored at priority N (the prefix is removed). Without the
# prefix every line is stored at the unit's default, info.
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6


def stream_is_journal(stream, env=None) -> bool:
    """True when *stream* is the journald stream systemd gave us ($JOURNAL_STREAM names its
    device and inode): then the priority prefix is understood. A terminal, a pipe or the
    detached refresher's log file gets plain lines."""
    env = os.environ if env is None else env
    device, _, inode = (env.get("JOURNAL_STREAM") or "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def priority_prefix(priority: int, stream) -> str:
    return f"<{priority}>" if stream_is_journal(stream) else ""
