"""Record classes: typed fields with defaults, equality, repr, optionally frozen, without
the standard library's `dataclasses`.

Why not dataclasses here: importing it imports `inspect` (~15 ms on these machines), and
it compiles every generated method from source text (~1 ms a class). `aiki-hooks costs`
imports some 25 record classes (configuration, thresholds, prices, scan and report
figures) before it reads a byte; together that was ~40 ms of a 0.45 s first scan. A
record's methods are generic functions shared by every record class, over the field
names the decorator collects from the class's annotations: nothing is compiled per class.

The subset of dataclasses this code base uses, with the same spelling, so that a class
changes by its import line only: `@record`, `@record(frozen=True, kw_only=True)`,
`field(default=..., default_factory=..., repr=False)`, `__post_init__`, `replace`,
`fields`, `asdict`. Construction is a few dict operations in Python (~1.7 us, a dataclass
~1 us): meant for classes made by the hundred; those made per file or per message are
plain classes or NamedTuples (costs.scan.FileRead, costs.store.Message).
"""

from __future__ import annotations

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record (as dataclasses.FrozenInstanceError)."""


class _Field:
    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, default, default_factory, repr: bool) -> None:  # noqa: A002 - dataclasses' name
        self.default, self.default_factory, self.repr = default, default_factory, repr


def field(*, default=_MISSING, default_factory=_MISSING, repr: bool = True):  # noqa: A002
    """A field's options, as dataclasses.field: a default, or a factory called for each
    new record (for mutable defaults), and whether repr shows it."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, repr)


class _Spec:
    """What the generic methods need to know of one record class."""

    __slots__ = ("names", "name_set", "defaults", "factories", "shown", "kw_only", "post_init")

    def __init__(self, names, defaults, factories, shown, kw_only, post_init) -> None:
        self.names, self.name_set, self.defaults, self.factories = names, frozenset(names), defaults, factories
        self.shown, self.kw_only, self.post_init = shown, kw_only, post_init


def record(cls=None, /, *, frozen: bool = False, kw_only: bool = False):
    """Make *cls* a record: `@record` or `@record(frozen=True, kw_only=True)`."""

    def make(cls):
        return _make(cls, frozen, kw_only)

    return make if cls is None else make(cls)


def _make(cls, frozen: bool, kw_only: bool):
    names: list[str] = []
    defaults: dict = {}
    factories: dict = {}
    hidden: set[str] = set()
    for base in reversed(cls.__mro__[1:]):  # a record's base records' fields come first
        spec = base.__dict__.get("__record__")
        if spec is not None:
            names += [n for n in spec.names if n not in names]
            defaults.update(spec.defaults)
            factories.update(spec.factories)
            hidden.update(n for n in spec.names if n not in spec.shown)
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if "ClassVar" in str(annotation):
            continue
        if name not in names:
            names.append(name)
        value = cls.__dict__.get(name, _MISSING)
        defaults.pop(name, None)
        factories.pop(name, None)
        if isinstance(value, _Field):
            if value.default is not _MISSING:
                defaults[name] = value.default
                setattr(cls, name, value.default)
            else:
                delattr(cls, name)
                if value.default_factory is not _MISSING:
                    factories[name] = value.default_factory
            if not value.repr:
                hidden.add(name)
        elif value is not _MISSING:
            defaults[name] = value
    if not kw_only:
        seen_default = None
        for name in names:
            if name in defaults or name in factories:
                seen_default = name
            elif seen_default is not None:
                raise TypeError(f"non-default argument {name!r} follows default argument {seen_default!r}")
    cls.__record__ = _Spec(tuple(names), defaults, factories, tuple(n for n in names if n not in hidden),
                           kw_only, getattr(cls, "__post_init__", None))
    cls.__init__ = _init
    cls.__repr__ = _repr
    cls.__eq__ = _eq
    if frozen:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
        cls.__hash__ = _hash
    else:
        cls.__hash__ = None  # mutable and compared by value: not hashable (as dataclasses)
    return cls


def _init(self, *args, **values) -> None:
    spec = type(self).__record__
    if args:
        _take_positional(type(self), spec, args, values)
    if not spec.name_set.issuperset(values):
        unknown = next(name for name in values if name not in spec.name_set)
        raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown!r}")
    # The instance dict directly (also for frozen records), a whole dict at a time: a
    # record is built in a few dict operations whatever its number of fields.
    fields = self.__dict__
    fields.update(spec.defaults)
    fields.update(values)
    for name, factory in spec.factories.items():
        if name not in values:
            fields[name] = factory()
    if len(fields) < len(spec.names):
        missing = next(name for name in spec.names if name not in fields)
        raise TypeError(f"{type(self).__name__}() missing required argument {missing!r}")
    if spec.post_init is not None:
        spec.post_init(self)


def _take_positional(cls, spec: _Spec, args: tuple, values: dict) -> None:
    if spec.kw_only:
        raise TypeError(f"{cls.__name__}() takes keyword arguments only")
    if len(args) > len(spec.names):
        raise TypeError(f"{cls.__name__}() takes {len(spec.names)} arguments, {len(args)} given")
    for name, value in zip(spec.names, args, strict=False):  # fewer args than fields: the rest default
        if name in values:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        values[name] = value


def _repr(self) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record__.shown)
    return f"{type(self).__qualname__}({shown})"


def _values(self) -> tuple:
    return tuple(getattr(self, name) for name in type(self).__record__.names)


def _eq(self, other):
    if type(other) is not type(self):
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self) -> int:
    return hash(_values(self))


def _frozen_setattr(self, name, value) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def is_record(value) -> bool:
    return hasattr(type(value) if not isinstance(value, type) else value, "__record__")


def fields(value) -> tuple[str, ...]:
    """The field names of a record (or record class), in order."""
    cls = value if isinstance(value, type) else type(value)
    try:
        return cls.__record__.names
    except AttributeError:
        raise TypeError(f"not a record: {cls.__name__}") from None


def replace(value, **changes):
    """A copy of the record *value* with *changes* (as dataclasses.replace)."""
    names = fields(value)
    for name in changes:
        if name not in names:
            raise TypeError(f"{type(value).__name__} has no field {name!r}")
    return type(value)(**{name: changes[name] if name in changes else getattr(value, name) for name in names})


def asdict(value) -> dict:
    """The record's fields as a dict, records inside (also in lists, tuples and dicts) too."""
    return {name: _plain(getattr(value, name)) for name in fields(value)}


def _plain(value):
    if is_record(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
