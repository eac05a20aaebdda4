"""Claude usage and cost: an incremental scan of Claude Code transcripts into a small
SQLite index, priced per message, summed per day / session / 5-hour block / week."""
