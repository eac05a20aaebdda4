"""aiki_hooks.model.records: the dataclasses subset the configuration and cost modules use."""

from __future__ import annotations

import dataclasses

import pytest

from aiki_hooks.model import records
from aiki_hooks.model.records import FrozenInstanceError, field, record


@record(frozen=True, kw_only=True)
class Limits:
    warn: float | None
    crit: float | None = None
    names: tuple[str, ...] = ()


@record
class Counter:
    path: str
    count: int = 0
    seen: list = field(default_factory=list)
    cache: bytes | None = field(default=None, repr=False)


@record
class Checked:
    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low > high")


@record(frozen=True)
class Outer:
    inner: Limits
    many: list


def test_keyword_and_positional_construction_with_defaults():
    assert Limits(warn=1.0).crit is None
    counter = Counter("a.jsonl", 3)
    assert (counter.path, counter.count, counter.seen, counter.cache) == ("a.jsonl", 3, [], None)
    assert Counter(path="b", count=2).count == 2


def test_argument_errors_are_the_ones_dataclasses_gives():
    with pytest.raises(TypeError, match="keyword arguments only"):
        Limits(1.0)
    with pytest.raises(TypeError, match="missing required argument 'warn'"):
        Limits(crit=2.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'wran'"):
        Limits(wran=1.0)
    with pytest.raises(TypeError, match="multiple values for argument 'path'"):
        Counter("a", path="b")
    with pytest.raises(TypeError, match="takes 4 arguments, 5 given"):
        Counter("a", 1, [], None, 5)


def test_a_default_factory_makes_a_new_value_for_each_record():
    first, second = Counter("a"), Counter("b")
    first.seen.append("x")
    assert second.seen == []
    assert "seen" not in Counter.__dict__  # no shared class attribute left behind


def test_frozen_records_refuse_assignment_and_hash_by_value():
    limits = Limits(warn=1.0, names=("cpu",))
    with pytest.raises(FrozenInstanceError):
        limits.warn = 2.0
    with pytest.raises(AttributeError):  # FrozenInstanceError is one, as in dataclasses
        del limits.crit
    assert hash(limits) == hash(Limits(warn=1.0, names=("cpu",)))
    assert {limits: 1}[Limits(warn=1.0, names=("cpu",))] == 1


def test_mutable_records_compare_by_value_and_are_not_hashable():
    assert Counter("a", 1) == Counter("a", 1)
    assert Counter("a", 1) != Counter("a", 2)
    assert Counter("a") != Checked(1, 2)
    with pytest.raises(TypeError):
        hash(Counter("a"))


def test_equality_needs_the_same_class():
    @record
    class Other:
        path: str
        count: int = 0
        seen: list = field(default_factory=list)
        cache: bytes | None = None

    assert Counter("a") != Other("a")


def test_repr_leaves_out_hidden_fields():
    assert repr(Counter("a", 2, cache=b"big")) == "Counter(path='a', count=2, seen=[])"
    assert repr(Limits(warn=1.0)) == "Limits(warn=1.0, crit=None, names=())"


def test_post_init_runs_after_the_fields_are_set():
    assert Checked(1, 2).high == 2
    with pytest.raises(ValueError, match="low > high"):
        Checked(3, 2)


def test_replace_fields_and_asdict():
    limits = Limits(warn=1.0, crit=2.0)
    changed = records.replace(limits, crit=3.0)
    assert (changed.warn, changed.crit, limits.crit) == (1.0, 3.0, 2.0)
    with pytest.raises(TypeError, match="no field 'level'"):
        records.replace(limits, level=1)
    assert records.fields(Limits) == ("warn", "crit", "names") == records.fields(limits)
    with pytest.raises(TypeError, match="not a record"):
        records.fields(object())
    outer = Outer(limits, [limits, {"k": limits}])
    plain = {"warn": 1.0, "crit": 2.0, "names": ()}
    assert records.asdict(outer) == {"inner": plain, "many": [plain, {"k": plain}]}


def test_the_same_results_as_dataclasses_for_the_same_class():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Reference:
        warn: float | None
        crit: float | None = None
        names: tuple[str, ...] = ()

    ours, theirs = Limits(warn=1.0, names=("a",)), Reference(warn=1.0, names=("a",))
    theirs_repr = repr(theirs)  # qualified: test_...<locals>.Reference(...)
    assert repr(ours).replace("Limits", "Reference") == theirs_repr[theirs_repr.index("Reference("):]
    assert records.asdict(ours) == dataclasses.asdict(theirs)
    assert hash(ours) == hash(theirs)  # both hash the tuple of field values


def test_a_required_field_after_a_default_is_refused():
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument 'a'"):
        @record
        class Bad:
            a: int = 0
            b: int


def test_both_default_and_factory_is_refused():
    with pytest.raises(ValueError):
        field(default=1, default_factory=int)


def test_a_record_inherits_its_base_records_fields():
    @record
    class Named(Counter):
        name: str = ""

    assert records.fields(Named) == ("path", "count", "seen", "cache", "name")
    assert Named("p", name="n").seen == []
