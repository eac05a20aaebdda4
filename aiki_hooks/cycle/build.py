"""From a config to the probes that run each cycle."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

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


def check_hints(config: Config, probes: Sequence[Probe]) -> dict[str, str]:
    """{result name: the user's `hint`} for the checks that have one, made safe like any
    outside text (control characters stripped, secrets redacted) and bounded. [resources]
    hints go by aspect ("disk" for every disk), a [costs] hint to every costs result, a
    [[probes.<kind>]] table's to the result of its name."""
    from aiki_hooks.config.validators import MAX_HINT_CHARS
    from aiki_hooks.cycle.runner import safe_text

    by_result: dict[str, str] = {}
    for entries in config.probe_entries:
        by_result.update(entries.hints)
    resources = dict(config.resources.hints)
    for probe in probes:
        if probe.kind == "resources":
            by_result.update({name: resources[aspect] for name in probe.names
                              if (aspect := "disk" if name.startswith("disk:") else name) in resources})
        elif probe.kind == "costs" and config.costs.hint:
            by_result.update(dict.fromkeys(probe.names, config.costs.hint))
    return {name: safe_text(hint)[:MAX_HINT_CHARS] for name, hint in by_result.items()}
