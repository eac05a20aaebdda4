"""Probes: one module per kind. A probe only measures and judges; the runner absorbs
its failures. Each probe takes its system dependencies (command runner, psutil, clock)
as constructor arguments so tests inject instead of patching.

The contract every probe meets is `registry.Probe`; each `[[probes.<kind>]]` kind declares
its config, validation and build once, as a `registry.ProbeKind` in its own module, and is
registered by one line in `registry.BUILTIN_KINDS` (or by an entry point, for a plugin).
`cycle.build.build_probes` turns a config into probes.
"""
