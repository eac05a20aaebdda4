#!/usr/bin/env python3
"""Claude Code hook entry point: runs aiki_hooks.hooklib.statusline. Always exits 0.

Registered with an absolute interpreter path (see the README). When the package is not
importable (running from a checkout or a plugin folder), the folder above this one is used.
"""
import os
import sys

try:
    try:
        from aiki_hooks.hooklib.statusline import main
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from aiki_hooks.hooklib.statusline import main
except BaseException as exc:  # noqa: BLE001 - a hook must never break Claude Code
    sys.stderr.write(f"aiki-hooks: cannot load the hook: {exc}\n")
    sys.exit(0)
sys.exit(main())
