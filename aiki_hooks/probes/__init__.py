"""Probes: one module per kind. A probe only measures and judges; the runner absorbs
its failures. Each probe takes its system dependencies (command runner, psutil, clock)
as constructor arguments so tests inject instead of patching.

The contract (`Probe`):
- `kind`: "systemd", "http", "tcp", "resources", "command", "costs".
- `names`: the result names it will produce, so the runner can report UNKNOWN for each
  of them when the probe raises or misses its deadline.
- `timeout_seconds`: the probe's own deadline, enforced on its I/O.
- `check()`: returns one ProbeResult per name; may raise (the runner turns that into
  UNKNOWN). `checked_at` / `duration_ms` are stamped by the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:
    from aiki_hooks.config.load import Config
    from aiki_hooks.model.result import ProbeResult


class Probe(Protocol):
    kind: str
    names: tuple[str, ...]
    timeout_seconds: float

    def check(self) -> Sequence["ProbeResult"]: ...


def build_probes(config: "Config", env=None) -> list[Probe]:
    """Instantiate every configured probe. Stateful probes (resources keeps the previous
    CPU sample) must be built once and reused across cycles."""
    import os

    # Each kind is imported only when configured: the refresher pays for what it uses.
    env = dict(os.environ if env is None else env)
    probes: list[Probe] = []
    if config.resources.enabled:
        from aiki_hooks.probes.resources import ResourcesProbe

        probes.append(ResourcesProbe(config.resources))
    if config.systemd:
        from aiki_hooks.probes.systemd import SystemdProbe

        for scope in ("user", "system"):
            units = [u for u in config.systemd if u.scope == scope]
            if units:
                probes.append(SystemdProbe(units, scope=scope))
    if config.http:
        from aiki_hooks.probes.http import HttpProbe

        probes.extend(HttpProbe(p, env=env) for p in config.http)
    if config.tcp:
        from aiki_hooks.probes.tcp import TcpProbe

        probes.extend(TcpProbe(p) for p in config.tcp)
    if config.command:
        from aiki_hooks.probes.command import CommandProbe

        probes.extend(CommandProbe(p) for p in config.command)
    if config.costs.enabled:
        from aiki_hooks.probes.costs import CostsProbe

        probes.append(CostsProbe(config.costs, config.state_dir, env=env))
    return probes
