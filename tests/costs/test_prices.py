"""The price table against the reference price list (USD per million tokens, read
2026-11-24), and model-id matching: an unknown version is unpriced, never a neighbour's price."""

from __future__ import annotations

import datetime as dt

import pytest

from aiki_hooks.costs.prices import PriceBook, Rates

# (input, 5m cache write, 1h cache write, cache read, output), as in the reference table.
FABLE_5_1 = (10, 12.50, 20, 0.25, 50)
FABLE_5 = (10, 12.50, 20, 1.00, 50)
OPUS_5_5 = (4, 5, 8, 0.20, 20)
OPUS_4_5 = (5, 6.25, 10, 0.50, 25)
OPUS_4 = (15, 18.75, 30, 1.50, 75)
SONNET_5_5 = (2, 2.50, 4, 0.10, 10)  # from 2026-10-07
SONNET_5_5_BEFORE = (2, 2.50, 4, 0.20, 10)
SONNET_5 = (2, 2.50, 4, 0.20, 10)
SONNET_4 = (3, 3.75, 6, 0.30, 15)
HAIKU_5_5 = (0.10, 0.125, 0.20, 0.01, 0.50)
HAIKU_4_5 = (1, 1.25, 2, 0.10, 5)
HAIKU_3_5 = (0.80, 1, 1.6, 0.08, 4)
HAIKU_3 = (0.25, 0.30, 0.50, 0.03, 1.25)

NOW = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc).timestamp()
BEFORE_CHANGE = dt.datetime(2026, 10, 6, tzinfo=dt.timezone.utc).timestamp()


def rates_of(model: str, ts: float = NOW) -> tuple | None:
    price = PriceBook().lookup(model)
    if price is None:
        return None
    r = price.rates_at(ts, 0)
    return (r.input, r.cache_write_5m, r.cache_write_1h, r.cache_read, r.output)


@pytest.mark.parametrize(
    "model, expected",
    [
        # Rows that sit next to each other and differ in one rate.
        ("claude-fable-5-1", FABLE_5_1),
        ("claude-mythos-5-1", FABLE_5_1),
        ("claude-fable-5", FABLE_5),
        ("claude-mythos-5", FABLE_5),
        ("claude-sonnet-5-5", SONNET_5_5),
        ("claude-sonnet-5", SONNET_5),
        ("claude-opus-5-5", OPUS_5_5),
        ("claude-opus-5", OPUS_4_5),
        ("claude-opus-4-8", OPUS_4_5),
        ("claude-opus-4-7", OPUS_4_5),
        ("claude-opus-4-6", OPUS_4_5),
        ("claude-opus-4-5-20251101", OPUS_4_5),
        ("claude-opus-4-1-20250805", OPUS_4),
        ("claude-opus-4-20250514", OPUS_4),
        ("claude-3-opus-20240229", OPUS_4),
        ("claude-sonnet-4-6", SONNET_4),
        ("claude-sonnet-4-5-20250929", SONNET_4),
        ("claude-sonnet-4-20250514", SONNET_4),
        ("claude-sonnet-4", SONNET_4),
        ("claude-3-7-sonnet-20250219", SONNET_4),
        ("claude-haiku-5-5", HAIKU_5_5),
        ("claude-haiku-4-5-20251001", HAIKU_4_5),
        ("claude-3-5-haiku-20241022", HAIKU_3_5),
        ("claude-3-haiku-20240307", HAIKU_3),
        # The suffixes a real id carries after its version.
        ("claude-opus-5-5[1m]", OPUS_5_5),
        ("claude-sonnet-4-5@20250929", SONNET_4),
        ("claude-opus-4-1@20250805", OPUS_4),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_4),
        ("anthropic.claude-3-haiku-20240307-v1:0", HAIKU_3),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", HAIKU_3_5),
        ("Claude-Sonnet-4-6", SONNET_4),
        # Versions the table does not have: unpriced, not the nearest shorter prefix.
        ("claude-opus-4-9", None),
        ("claude-opus-4-9-20270101", None),
        ("claude-sonnet-4-7", None),
        ("claude-sonnet-4-5-1", None),
        ("claude-fable-5-2", None),
        ("claude-mythos-5-9[1m]", None),
        ("claude-sonnet-5-6", None),
        ("claude-haiku-5-55", None),
        ("claude-opus-45", None),
        ("claude-opus-4-1-preview", None),
        ("claude-3-haiku-2024", None),
        ("claude-sonnet", None),
        ("claude-nova-9", None),
        ("gpt-4o", None),
        ("unknown", None),
    ],
)
def test_model_ids_match_only_their_own_row(model, expected):
    assert rates_of(model) == expected


def test_sonnet_5_5_cache_read_before_its_price_change():
    assert rates_of("claude-sonnet-5-5", BEFORE_CHANGE) == SONNET_5_5_BEFORE
    assert rates_of("claude-sonnet-5", BEFORE_CHANGE) == SONNET_5


def test_an_unknown_version_costs_none_not_a_neighbours_price():
    tokens = dict(input=1_000_000, output=1_000_000, cache_write_5m=0, cache_write_1h=0, cache_read=0)
    book = PriceBook()
    assert book.cost("claude-opus-4-20250514", NOW, **tokens) == pytest.approx(90.0)
    assert book.cost("claude-opus-4-9", NOW, **tokens) is None
    assert book.cost("claude-fable-5-2", NOW, **tokens) is None


def test_overrides_follow_the_same_rule_and_a_star_matches_a_family():
    rates = Rates(input=7, cache_write_5m=8, cache_write_1h=9, cache_read=1, output=30)
    tokens = dict(input=1_000_000, output=0, cache_write_5m=0, cache_write_1h=0, cache_read=0)
    book = PriceBook({"claude-nova-9": rates, "claude-star-*": rates})
    assert book.cost("claude-nova-9-20270101", NOW, **tokens) == 7
    assert book.cost("claude-nova-9[1m]", NOW, **tokens) == 7
    assert book.cost("claude-nova-95", NOW, **tokens) is None
    assert book.cost("claude-star-2-1", NOW, **tokens) == 7
    # An override for a version the table lacks prices it; the table's own rows stay.
    book = PriceBook({"claude-opus-4-9": rates})
    assert book.cost("claude-opus-4-9", NOW, **tokens) == 7
    assert book.cost("claude-opus-4", NOW, **tokens) == 15
