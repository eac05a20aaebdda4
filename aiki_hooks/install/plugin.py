"""Build a clean Claude Code plugin folder (with its local marketplace) from a checkout.

`claude plugin install` copies the whole plugin folder; a working checkout holds venvs,
caches and benchmark corpora, so the installer assembles just what the plugin needs:

    <target>/.claude-plugin/marketplace.json     the "aiki-local" marketplace
    <target>/aiki-hooks/.claude-plugin/plugin.json
    <target>/aiki-hooks/hooks/                   hooks.json, plugin-run, plugin-bootstrap, the hook scripts
    <target>/aiki-hooks/aiki_hooks/              the package (the hooks import it; the bootstrap installs it)
    <target>/aiki-hooks/pyproject.toml, README.md, LICENSE

Usage: python -m aiki_hooks.install.plugin CHECKOUT TARGET
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from aiki_hooks import __version__

PLUGIN_NAME = "aiki-hooks"
MARKETPLACE_NAME = "aiki-local"
HOOK_FILES = ("hooks.json", "plugin-run", "plugin-bootstrap", "session_start.py", "pre_tool_use.py", "statusline.py")
TOP_FILES = ("pyproject.toml", "README.md", "LICENSE")


def build_plugin(checkout: Path, target: Path) -> Path:
    """Write the marketplace + plugin under *target* (replaced if present); returns the
    plugin folder."""
    checkout, target = Path(checkout).resolve(), Path(target)
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    plugin = staging / PLUGIN_NAME
    (plugin / ".claude-plugin").mkdir(parents=True)
    # The version lives in aiki_hooks.__version__ only; the built plugin's manifest carries it.
    plugin_manifest = json.loads((checkout / ".claude-plugin" / "plugin.json").read_text())
    plugin_manifest["version"] = __version__
    (plugin / ".claude-plugin" / "plugin.json").write_text(json.dumps(plugin_manifest, indent=2) + "\n")
    (plugin / "hooks").mkdir()
    for name in HOOK_FILES:
        shutil.copy2(checkout / "hooks" / name, plugin / "hooks" / name)
    for name in TOP_FILES:
        shutil.copy2(checkout / name, plugin / name)
    shutil.copytree(checkout / "aiki_hooks", plugin / "aiki_hooks",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (staging / ".claude-plugin").mkdir()
    manifest = json.loads((checkout / ".claude-plugin" / "marketplace.json").read_text())
    manifest["plugins"] = [dict(manifest["plugins"][0], source=f"./{PLUGIN_NAME}")]
    (staging / ".claude-plugin" / "marketplace.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target / PLUGIN_NAME


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__.strip().splitlines()[-1] + "\n")
        return 2
    plugin = build_plugin(Path(argv[0]), Path(argv[1]))
    sys.stdout.write(f"{plugin}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
