"""The hot path: what the Claude Code hooks run on every session start and tool call.

Standard library only, and only cheap modules (json, os, sys, time): a hook pays for
every import on every tool call. `text` is pure (snapshot -> words), `runtime` does the
little I/O there is (stdin, the cache, the per-session memory, a detached refresh), and
`session_start`, `pre_tool_use` and `statusline` are the three entry points.
"""
