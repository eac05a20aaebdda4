"""aiki-hooks: a system-health companion for Claude Code.

The package root stays import-free on purpose: the hooks import `aiki_hooks.cycle.cache`
on every tool call and must not pay for anything they do not use.
"""

__version__ = "0.1.0"
