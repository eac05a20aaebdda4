"""Claude API prices, USD per million tokens.

Source: Anthropic's pricing and model overview pages
(platform.claude.com/docs/en/about-claude/pricing, /docs/en/models/*/overview), read on
2026-11-24. claude-3-5-sonnet is no longer on that page; its row is Anthropic's
published price while it was sold. Users override or add rows in `[costs.prices]`.

Traps handled here (each has bitten a public cost tracker):
- each message is priced on its own, at the rate in force on its timestamp (Sonnet 5.5's
  cache read changed on 2026-10-07) and in the tier its own prompt size selects (Sonnet
  4 / 4.5 above 200k prompt tokens, Haiku 5.5 above 100k: every token of that request,
  output included, at the higher rate);
- model ids carry date and context suffixes (`claude-sonnet-4-5-20250929`,
  `claude-opus-5-5[1m]`), Vertex and Bedrock forms (`claude-opus-4-1@20250805`,
  `...-20250929-v1:0`) and provider prefixes (`us.anthropic.claude-...`): a row's prefix
  matches only where its version ends (see `SUFFIX`), so `claude-opus-4-9` is not Opus 4
  and `claude-fable-5-2` is not Fable 5;
- a model missing here is *unpriced*, never $0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from aiki_hooks.model.dates import parse_utc

if TYPE_CHECKING:
    from aiki_hooks.config.load import CostsConfig

# The table below: Anthropic pricing page, read 2026-11-24.


@dataclass(frozen=True)
class Rates:
    """USD per million tokens, per kind of token."""

    input: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    output: float


@dataclass(frozen=True)
class Tier:
    """Above `prompt_tokens` (input + cache writes + cache reads of one request), every
    token of that request is billed at `rates`."""

    prompt_tokens: int
    rates: Rates


@dataclass(frozen=True)
class ModelPrice:
    """A model's rates, its long-context tier and the dated changes of its rates."""

    prefixes: tuple[str, ...]
    rates: Rates
    tier: Tier | None = None
    # (effective from, rates): later rows win for messages at or after their date.
    changes: tuple[tuple[float, Rates], ...] = field(default=())

    def rates_at(self, timestamp: float, prompt_tokens: int) -> Rates:
        rates = self.rates
        for since, changed in self.changes:
            if timestamp >= since:
                rates = changed
        if self.tier is not None and prompt_tokens > self.tier.prompt_tokens:
            return self.tier.rates
        return rates


OPUS_4_5 = Rates(input=5, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.50, output=25)
OPUS_4 = Rates(input=15, cache_write_5m=18.75, cache_write_1h=30, cache_read=1.50, output=75)
SONNET_4 = Rates(input=3, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30, output=15)
SONNET_4_LONG = Rates(input=6, cache_write_5m=7.50, cache_write_1h=12, cache_read=0.60, output=22.50)

TABLE: tuple[ModelPrice, ...] = (
    ModelPrice(("claude-fable-5-1", "claude-mythos-5-1"),
               Rates(input=10, cache_write_5m=12.50, cache_write_1h=20, cache_read=0.25, output=50)),
    ModelPrice(("claude-fable-5", "claude-mythos-5"),
               Rates(input=10, cache_write_5m=12.50, cache_write_1h=20, cache_read=1.00, output=50)),
    ModelPrice(("claude-opus-5-5",), Rates(input=4, cache_write_5m=5, cache_write_1h=8, cache_read=0.20, output=20)),
    ModelPrice(("claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6", "claude-opus-4-5"),
               OPUS_4_5),
    ModelPrice(("claude-opus-4-1", "claude-opus-4", "claude-3-opus"), OPUS_4),
    ModelPrice(("claude-sonnet-5-5",), Rates(input=2, cache_write_5m=2.50, cache_write_1h=4, cache_read=0.20, output=10),
               changes=((parse_utc("2026-10-07"), Rates(input=2, cache_write_5m=2.50, cache_write_1h=4, cache_read=0.10,
                                                     output=10)),)),
    ModelPrice(("claude-sonnet-5",), Rates(input=2, cache_write_5m=2.50, cache_write_1h=4, cache_read=0.20, output=10)),
    # Sonnet 4 (`claude-sonnet-4`, `claude-sonnet-4-20250514`) and 4.5 have the long-context tier.
    ModelPrice(("claude-sonnet-4-5", "claude-sonnet-4"), SONNET_4, tier=Tier(200_000, SONNET_4_LONG)),
    ModelPrice(("claude-sonnet-4-6", "claude-3-7-sonnet", "claude-3-5-sonnet"), SONNET_4),
    ModelPrice(("claude-haiku-5-5",), Rates(input=0.10, cache_write_5m=0.125, cache_write_1h=0.20, cache_read=0.01,
                                            output=0.50),
               tier=Tier(100_000, Rates(input=0.50, cache_write_5m=0.625, cache_write_1h=1.00, cache_read=0.05,
                                        output=2.50))),
    ModelPrice(("claude-haiku-4-5",), Rates(input=1, cache_write_5m=1.25, cache_write_1h=2, cache_read=0.10, output=5)),
    ModelPrice(("claude-3-5-haiku",), Rates(input=0.80, cache_write_5m=1, cache_write_1h=1.6, cache_read=0.08, output=4)),
    ModelPrice(("claude-3-haiku",), Rates(input=0.25, cache_write_5m=0.30, cache_write_1h=0.50, cache_read=0.03,
                                          output=1.25)),
)


# What may follow a row's prefix: nothing, a `-YYYYMMDD` date, then Vertex's `@...`,
# Bedrock's `-v1:0` or a context suffix `[1m]`. Anything else (`-9`, `-5-2`, `-preview`) is
# another model, which must stay unpriced rather than take a neighbour's price.
SUFFIX = re.compile(r"(?:-\d{8})?(?:@|-v\d|\[|$)")
# An override key ending in `*` (`"claude-nova-*"`) deliberately matches a whole family.
WILDCARD = "*"


def prefix_matches(name: str, prefix: str) -> bool:
    """*name* (normalised) is the model *prefix* names, not merely a string starting with it."""
    if prefix.endswith(WILDCARD):
        return name.startswith(prefix[:-1])
    return name.startswith(prefix) and SUFFIX.match(name, len(prefix)) is not None


def normalise_model(model: str) -> str:
    """`us.anthropic.claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5-20250929-v1:0`;
    `claude-opus-5-5[1m]` -> `claude-opus-5-5`."""
    name = model.strip().lower()
    start = name.find("claude-")
    if start > 0:
        name = name[start:]
    bracket = name.find("[")
    return name[:bracket] if bracket >= 0 else name


class PriceBook:
    """The table plus the user's overrides, matched by longest prefix (see prefix_matches)."""

    def __init__(self, overrides: Mapping[str, Rates] | None = None) -> None:
        entries: list[tuple[str, ModelPrice]] = []
        for price in TABLE:
            entries.extend((prefix, price) for prefix in price.prefixes)
        for prefix, rates in (overrides or {}).items():
            entries.append((normalise_model(prefix), ModelPrice((prefix,), rates)))
        # Longest prefix first; an override beats a built-in row of the same prefix.
        self._entries = sorted(enumerate(entries), key=lambda item: (-len(item[1][0]), -item[0]))
        self._cache: dict[str, ModelPrice | None] = {}
        self.fingerprint = repr(sorted((p, repr(m)) for p, m in entries))

    def lookup(self, model: str) -> ModelPrice | None:
        if model in self._cache:
            return self._cache[model]
        name = normalise_model(model)
        found = next((price for _, (prefix, price) in self._entries if prefix_matches(name, prefix)), None)
        self._cache[model] = found
        return found

    def cost(self, model: str, timestamp: float, *, input: int, output: int, cache_write_5m: int,
             cache_write_1h: int, cache_read: int) -> float | None:
        """USD for one message, or None when the model is not in the book."""
        price = self.lookup(model)
        if price is None:
            return None
        prompt = input + cache_write_5m + cache_write_1h + cache_read
        r = price.rates_at(timestamp, prompt)
        return (input * r.input + output * r.output + cache_write_5m * r.cache_write_5m
                + cache_write_1h * r.cache_write_1h + cache_read * r.cache_read) / 1_000_000


def price_book(config: CostsConfig) -> PriceBook:
    """The table with the config's `[costs.prices]` added (or overriding its rows)."""
    return PriceBook({prefix: Rates(input=p.input, cache_write_5m=p.cache_write_5m, cache_write_1h=p.cache_write_1h,
                                    cache_read=p.cache_read, output=p.output) for prefix, p in config.prices})
