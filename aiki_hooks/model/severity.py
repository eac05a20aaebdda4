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

# The same states in chat alerts (outputs/formats.py): an emoji, as a character (Slack,
# Discord) and as its shortcode (ntfy's tags), and a colour as 0xRRGGBB (Discord's embed
# bar), in the terminal's hues. A resolved issue shows as OK.
EMOJI = {"OK": "\u2705", "WARNING": "\u26a0\ufe0f", "CRITICAL": "\U0001f6a8", "UNKNOWN": "\u2754"}
EMOJI_NAMES = {"OK": "white_check_mark", "WARNING": "warning", "CRITICAL": "rotating_light", "UNKNOWN": "grey_question"}
RGB_COLORS = {"OK": 0x2EB67D, "WARNING": 0xECB22E, "CRITICAL": 0xE01E5A, "UNKNOWN": 0x9B59B6}


def rank(name: object, default: int = 0) -> int:
    """The rank of a state's name in ORDER; *default* for anything else (a cache from
    another version, a missing field)."""
    return RANK.get(name, default) if isinstance(name, str) else default


def worst(names, default: str = "OK") -> str:
    """The most severe of *names* (state names; anything else ranks as OK), *default* when
    there are none: model.status.worst for plain names."""
    return max(names, key=rank, default=default)
