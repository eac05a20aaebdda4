"""The order of the four states by how much they matter, as plain names: the one
definition that `model.status.Status` builds on and the hooks use directly.

No imports at all: the hooks run on every Claude Code tool call, and `model.status`
(enum, typing) costs them ~9 ms.
"""

# Least to most severe. UNKNOWN ("could not tell") ranks above OK and below WARNING.
ORDER = ("OK", "UNKNOWN", "WARNING", "CRITICAL")
RANK = {name: rank for rank, name in enumerate(ORDER)}

# Terminal colour of each state's word (SGR codes): green, yellow, red, magenta.
ANSI_COLORS = {"OK": "32", "WARNING": "33", "CRITICAL": "31", "UNKNOWN": "35"}


def rank(name: object, default: int = 0) -> int:
    """The rank of a state's name in ORDER; *default* for anything else (a cache from
    another version, a missing field)."""
    return RANK.get(name, default) if isinstance(name, str) else default
