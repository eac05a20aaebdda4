"""Probes: one module per kind. A probe only measures and judges; the runner absorbs
its failures. Each probe takes its system dependencies (command runner, psutil, clock)
as constructor arguments so tests inject instead of patching.

The contract (`Probe`):
- `kind`: "systemd", "http", "tcp", "resources", "command".
- `names`: the result names it will produce, so the runner can report UNKNOWN for each
  of them when the probe raises or misses its deadline.
- `timeout_seconds`: the probe's own deadline, enforced on its I/O.
- `check()`: returns one ProbeResult per name; may raise (the runner turns that into
  UNKNOWN). `checked_at` / `duration_ms` are stamped by the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:
    from ..config import Config
    from ..result import ProbeResult


class Probe(Protocol):
    kind: str
    names: tuple[str, ...]
    timeout_seconds: float

    def check(self) -> Sequence["ProbeResult"]: ...


def build_probes(config: "Config", env=None) -> list[Probe]:
    """Instantiate every configured probe. Stateful probes (resources keeps the previous
    CPU sample) must be built once and reused across cycles."""
    import os

    from .command import CommandProbe
    from .http import HttpProbe
    from .resources import ResourcesProbe
    from .systemd import SystemdProbe
    from .tcp import TcpProbe

    env = dict(os.environ if env is None else env)
    probes: list[Probe] = []
    if config.resources.enabled:
        probes.append(ResourcesProbe(config.resources))
    for scope in ("user", "system"):
        units = [u for u in config.systemd if u.scope == scope]
        if units:
            probes.append(SystemdProbe(units, scope=scope))
    probes.extend(HttpProbe(p, env=env) for p in config.http)
    probes.extend(TcpProbe(p) for p in config.tcp)
    probes.extend(CommandProbe(p) for p in config.command)
    return probes
