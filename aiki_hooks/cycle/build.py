"""From a config to the probes that run each cycle."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiki_hooks.config.load import Config
from aiki_hooks.probes.registry import BuildContext, Probe


def build_probes(config: Config, env: Mapping[str, str] | None = None) -> list[Probe]:
    """Instantiate every configured probe. Stateful probes (resources keeps the previous
    CPU sample) must be built once and reused across cycles."""
    context = BuildContext(env=dict(os.environ if env is None else env), state_dir=config.state_dir)
    probes: list[Probe] = []
    # [resources] and [costs] are tables of their own, on by default; each probe module
    # is imported only when used: the refresher pays for what it uses.
    if config.resources.enabled:
        from aiki_hooks.probes.resources import ResourcesProbe

        probes.append(ResourcesProbe(config.resources, state_dir=config.state_dir))
    for entries in config.probe_entries:
        probes.extend(entries.kind.build(entries.configs, context))
    if config.costs.enabled:
        from aiki_hooks.probes.costs import CostsProbe

        probes.append(CostsProbe(config.costs, config.state_dir, env=context.env))
    return probes
