"""What the hooks told the agent, into the issue journal. The refresher feeds mem0 from
the journal (through the mem0 output's filter), so a hook never touches the spool.
Imported only when there is something to note, so the silent path never pays for it.
Nothing here may fail a hook."""

from __future__ import annotations

from aiki_hooks.hooklib import runtime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def note_session_event(directory: str, data: dict[str, Any], issues: Any, *, event: str, told: bool,
                       session_id: str, cwd: Any, now: float) -> list[dict[str, Any]]:
    """Journal one record per issue (with an occurrence id) not yet noted for this session:
    `session_told` when *told*, else `session_began`; returns the records written."""
    # The journal notes only issues with an occurrence id (journal.session_event): without
    # one there is nothing to import it for.
    if not session_id or not isinstance(issues, list) or not any(
            isinstance(issue, dict) and issue.get("occurrence_id") for issue in issues):
        return []
    from aiki_hooks.issues import journal

    transition = journal.SESSION_TOLD if told else journal.SESSION_BEGAN

    settings = data.get("hooks") or {}
    try:
        records = journal.session_event(
            directory, session_id=session_id, cwd=cwd if isinstance(cwd, str) else None,
            open_issues=issues, now=now, host=str(data.get("host") or ""), transition=transition,
            max_bytes=int(settings.get("journal_max_bytes") or journal.DEFAULT_MAX_BYTES),
            keep_files=int(settings.get("journal_keep_files") or journal.DEFAULT_KEEP_FILES),
        )
        return records
    except (OSError, ValueError, TypeError) as exc:
        runtime.note_failure(event, exc)
        return []
