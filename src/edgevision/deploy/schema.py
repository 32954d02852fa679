"""A small declarative schema for JSON values, for files that come from elsewhere (plan manifests).

A schema is a tree of the nodes below; ``node.check(value, "where")`` returns ``None`` or raises
:class:`SchemaError` naming the first field that does not fit, e.g.
``inputs[0].preprocessing.mean: expected 3 finite numbers, got None``. Only what a node allows
passes: a record refuses fields it does not list, numbers are finite, and ``True`` is not an
integer. JSON's arrays may be lists or tuples and its objects any mapping, so a value is checked
in the same way before it is written and after it is read.

Example:
    >>> Record({"threads": Integer(0, 1024)}).check({"threads": 2000}, "tactic")
    Traceback (most recent call last):
    ...
    edgevision.deploy.schema.SchemaError: tactic.threads: expected an integer in [0, 1024], got 2000
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgevision.errors import ConfigError

_SHOWN = 60  # characters of a refused value quoted in a message


class SchemaError(ConfigError):
    """A JSON value does not fit its schema; the message names the field."""


class Node(Protocol):
    """A schema node: what it expects, and a check of one value against it."""

    def expects(self) -> str: ...

    def check(self, value: Any, where: str) -> None: ...


def _refuse(node: Node, value: Any, where: str) -> SchemaError:
    shown = repr(value)
    shown = shown if len(shown) <= _SHOWN else shown[: _SHOWN - 3] + "..."
    return SchemaError(f"{where}: expected {node.expects()}, got {shown}")


def _field(where: str, name: str) -> str:
    """The path of field ``name`` of the value at ``where`` (``""``: the root)."""
    return f"{where}.{name}" if where else name


@dataclass(frozen=True)
class Text:
    """A string of ``1..max_length`` characters, matching ``pattern`` (a full match) if given."""

    max_length: int = 256
    pattern: str | None = None

    def expects(self) -> str:
        shape = f" matching {self.pattern}" if self.pattern else ""
        return f"a string of 1 to {self.max_length} characters{shape}"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, str) or not 0 < len(value) <= self.max_length:
            raise _refuse(self, value, where)
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise _refuse(self, value, where)


@dataclass(frozen=True)
class Choice:
    """One of ``choices`` (strings, compared exactly)."""

    choices: tuple[str, ...]

    def expects(self) -> str:
        return "one of " + ", ".join(self.choices)

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, str) or value not in self.choices:
            raise _refuse(self, value, where)


@dataclass(frozen=True)
class Boolean:
    """``true`` or ``false``."""

    def expects(self) -> str:
        return "true or false"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, bool):
            raise _refuse(self, value, where)


@dataclass(frozen=True)
class Integer:
    """An integer in ``[low, high]`` (not a boolean, not a float with an integer value)."""

    low: int
    high: int

    def expects(self) -> str:
        return f"an integer in [{self.low}, {self.high}]"

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise _refuse(self, value, where)


@dataclass(frozen=True)
class Number:
    """A finite number (integer or float), above 0 when ``positive``."""

    positive: bool = False

    def expects(self) -> str:
        return "a finite positive number" if self.positive else "a finite number"

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _refuse(self, value, where)
        if self.positive and value <= 0:
            raise _refuse(self, value, where)


@dataclass(frozen=True)
class Nullable:
    """``null``, or what ``node`` accepts."""

    node: Node

    def expects(self) -> str:
        return f"null or {self.node.expects()}"

    def check(self, value: Any, where: str) -> None:
        if value is None:
            return
        try:
            self.node.check(value, where)
        except SchemaError as error:
            if str(error).startswith(f"{where}: expected"):  # the value itself, not a field in it
                raise _refuse(self, value, where) from None
            raise


@dataclass(frozen=True)
class Either:
    """What one of ``nodes`` accepts."""

    nodes: tuple[Node, ...]

    def expects(self) -> str:
        return " or ".join(node.expects() for node in self.nodes)

    def check(self, value: Any, where: str) -> None:
        for node in self.nodes:
            try:
                node.check(value, where)
                return
            except SchemaError:
                continue
        raise _refuse(self, value, where)


@dataclass(frozen=True)
class Array:
    """An array of ``min_items..max_items`` items, each accepted by ``item``."""

    item: Node
    min_items: int = 0
    max_items: int = 256

    def expects(self) -> str:
        count = (
            str(self.min_items)
            if self.min_items == self.max_items
            else f"{self.min_items} to {self.max_items}"
        )
        return f"an array of {count} items"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list | tuple) or not self.min_items <= len(value) <= self.max_items:
            raise _refuse(self, value, where)
        for index, item in enumerate(value):
            self.item.check(item, f"{where}[{index}]")


@dataclass(frozen=True)
class Record:
    """An object with the fields ``fields`` lists (name -> node), each required unless in
    ``optional``; any other field is refused. ``or_empty`` also accepts ``{}``."""

    fields: Mapping[str, Node]
    optional: frozenset[str] = field(default_factory=frozenset)
    or_empty: bool = False

    def expects(self) -> str:
        return ("{} or " if self.or_empty else "") + "an object with the fields " + ", ".join(self.fields)

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, Mapping):
            raise _refuse(self, value, where)
        if self.or_empty and not value:
            return
        unknown = sorted(str(name) for name in value if name not in self.fields)
        if unknown:
            raise SchemaError(
                f"{where or 'the root'}: unknown field(s) {unknown[:5]}; known: {', '.join(self.fields)}"
            )
        for name, node in self.fields.items():
            if name in value:
                node.check(value[name], _field(where, name))
            elif name not in self.optional:
                raise SchemaError(f"{where or 'the root'}: the field {name!r} is missing")


@dataclass(frozen=True)
class Table:
    """An object of at most ``max_items`` fields, names accepted by ``key``, values by ``value``."""

    key: Text
    value: Node
    max_items: int = 256

    def expects(self) -> str:
        return f"an object of at most {self.max_items} fields"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, Mapping) or len(value) > self.max_items:
            raise _refuse(self, value, where)
        for name, item in value.items():
            self.key.check(name, f"{where} field name")
            self.value.check(item, _field(where, str(name)))
