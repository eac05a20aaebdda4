"""Putting aiki-hooks on a machine: Claude Code settings, the systemd unit or detached refresher, the plugin folder, and `doctor`, which checks it all."""
