"""Typed JSON records: dataclasses whose fields are the JSON keys, read tolerantly and written back as read.

The result records (``run/records``) are built on ``Record``. The rules:

- A key the file lacks (a version-1 file, a failed cell) reads as the field's default (None, an
  empty list or mapping) and is **not written back**; keys are written in the order they were read
  (or given), so ``from_json(x).to_json() == x``, key order included, for every valid file. Writers
  use ``Record.of(...)``, which writes exactly the fields they give, in that order; ``assign`` adds
  one at the end, as a dict would.
- A key this version does not know (a newer tbench, a user's script) is **kept** in ``extra`` and
  written back after the known keys, so a report or a re-assembled run never drops data.
- A nested value of the wrong type (``"curves": 3``) reads as absent; what must be there is checked by
  the records themselves (``run/records``: ``CellRecord.checked``, ``RunDocument.checked``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


def nested(kind: type, default: Any = None, many: bool = False) -> Any:
    """A field holding another record (or, with ``many``, a list of them)."""
    if many:
        return field(default_factory=list, metadata={"record": kind, "many": True})
    return field(default=default, metadata={"record": kind})


@dataclass
class Record:
    """Base of every record: JSON keys are the field names; see the module docstring for the rules."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    # The JSON keys present, in the order they are written (extra keys included); None: every field,
    # in declaration order (a record built with the plain constructor).
    order: list[str] | None = field(default=None, repr=False, compare=False, kw_only=True)

    _INTERNAL: ClassVar[tuple[str, ...]] = ("extra", "order")

    @classmethod
    def keys(cls) -> list[str]:
        """The JSON keys this record knows, in the order they are written."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in cls._INTERNAL]

    @classmethod
    def of(cls: type[R], **values: Any) -> R:
        """A record that writes exactly the given fields (the others keep their defaults, unwritten)."""
        record = cls(**values)
        record.order = list(values)
        return record

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        """Read a mapping as written by ``to_json`` (or by an older tbench); no checks beyond types."""
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in cls._INTERNAL}
        values = {}
        for name, spec in known.items():
            if name in data:
                value = _read(spec, data[name])
                if value is not _WRONG_TYPE:
                    values[name] = value
        record = cls(**values)
        record.extra = {k: v for k, v in data.items() if k not in known}
        record.order = [k for k in data if k in values or k in record.extra]
        return record

    def to_json(self) -> dict[str, Any]:
        """The JSON mapping: the present fields and kept unknown keys, in their order."""
        known = self.keys()
        order = self.order if self.order is not None else known
        out = {name: _write(getattr(self, name)) if name in known else self.extra[name]
               for name in order if name in known or name in self.extra}
        out.update((k, v) for k, v in self.extra.items() if k not in out)
        return out

    def present(self, name: str) -> bool:
        """Whether ``name`` is a field this record holds (written to, or read from, JSON)."""
        return name in self.keys() and (self.order is None or name in self.order)

    def assign(self, name: str, value: Any) -> None:
        """Set a field and mark it present (at the end, when it was not)."""
        setattr(self, name, value)
        if self.order is not None and name not in self.order:
            self.order.append(name)

    def copy(self: R) -> R:
        """A shallow copy whose presence and extra keys can change without touching this one."""
        return dataclasses.replace(self, extra=dict(self.extra), order=None if self.order is None else list(self.order))


_WRONG_TYPE = object()


def _read(spec: dataclasses.Field, value: Any) -> Any:
    kind = spec.metadata.get("record")
    if kind is None or value is None:
        return value
    if spec.metadata.get("many"):
        if not isinstance(value, list):
            return _WRONG_TYPE
        return [kind.from_json(v) if isinstance(v, dict) else v for v in value]
    return kind.from_json(value) if isinstance(value, dict) else _WRONG_TYPE


def _write(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_write(v) for v in value]
    if isinstance(value, dict):
        return {k: _write(v) for k, v in value.items()}
    return value
