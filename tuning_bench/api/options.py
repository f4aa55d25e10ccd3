"""Typed, validated method options: each default carries where it comes from."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuning_bench.api.errors import UsageError, did_you_mean

_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "true/false", list: "list", dict: "JSON object"}


@dataclass(frozen=True)
class Option:
    """One option of a method.

    ``default`` is used unless the user overrides it; ``source`` says where the default comes from
    (a paper, a library default, a measurement). ``choices`` restricts strings, ``minimum`` and
    ``maximum`` bound numbers (inclusive). ``type`` is one of int, float, str, bool, list (of strings) or
    dict (a JSON object).
    """

    name: str
    type: type
    default: Any
    help: str
    source: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = field(default=False)

    def parse(self, text: str) -> Any:
        """Turn the text of ``--set method.option=TEXT`` into a value of this option's type."""
        text = text.strip()
        if self.nullable and text.lower() in ("none", "null", ""):
            return None
        try:
            if self.type is bool:
                lowered = text.lower()
                if lowered in ("true", "yes", "1", "on"):
                    return True
                if lowered in ("false", "no", "0", "off"):
                    return False
                raise ValueError(text)
            if self.type is int:
                return int(text)
            if self.type is float:
                return float(text)
            if self.type is dict:
                value = json.loads(text)
                if not isinstance(value, dict):
                    raise ValueError(text)
                return value
            if self.type is list:
                if text.startswith("["):
                    value = json.loads(text)
                    if not isinstance(value, list):
                        raise ValueError(text)
                    return [str(v) for v in value]
                return [part.strip() for part in text.split(",") if part.strip()]
            return text
        except (ValueError, OverflowError, json.JSONDecodeError):
            raise ValueError(f"expected {_TYPE_NAMES.get(self.type, self.type.__name__)}, got {text!r}") from None

    def check(self, value: Any) -> Any:
        """Validate a value (from a config file or ``parse``); return it normalised or raise ValueError."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError("a value is required")
        expected = _TYPE_NAMES.get(self.type, self.type.__name__)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value) if abs(value) < 2**1023 else math.inf  # float() of a huge int raises
        if self.type is list and isinstance(value, str):
            value = self.parse(value)
        if self.type is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"expected a list of strings, got {value!r}")
        elif not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise ValueError(f"expected {expected}, got {value!r}")
        if self.type is float and not math.isfinite(value):
            # NaN passes every comparison (so every range check) and inf overflows: refuse both here.
            raise ValueError(f"must be a finite number, got {value!r}")
        problem = range_problem(value, self.choices, self.minimum, self.maximum)
        if problem:
            raise ValueError(f"{problem}, got {value!r}")
        return value


def range_problem(value: Any, choices: tuple[Any, ...] | None, minimum: float | None, maximum: float | None) -> str | None:
    """Why a value falls outside its choices or bounds ("must be at least 1"), or None when it is inside.

    Shared by method options and run settings, so both say the same thing about the same mistake.
    """
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(map(str, choices))}"
    if minimum is not None and value < minimum:
        return f"must be at least {minimum:g}"
    if maximum is not None and value > maximum:
        return f"must be at most {maximum:g}"
    return None


def resolve_options(
    owner: str, options: Iterable[Option], overrides: Mapping[str, Any], where: str = "--set"
) -> dict[str, Any]:
    """Merge user overrides into the defaults, rejecting unknown keys and invalid values with one line.

    ``overrides`` values may be strings (from the command line, parsed here) or typed values (from a
    YAML file). ``where`` names the place the override came from, for the error message.
    """
    by_name = {option.name: option for option in options}
    resolved = {option.name: option.default for option in by_name.values()}
    for key, raw in overrides.items():
        option = by_name.get(key)
        if option is None:
            err = did_you_mean("option", key, by_name, of=f" of method '{owner}'")
            raise UsageError(f"{where}: {err} Example: --set {owner}.{next(iter(by_name), 'option')}=VALUE")
        try:
            value = option.parse(raw) if isinstance(raw, str) and option.type is not str else raw
            resolved[key] = option.check(value)
        except ValueError as exc:
            raise UsageError(f"{where}: {owner}.{key} {exc}. {option.help}") from None
    return resolved


def parse_set_arguments(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """Split ``--set method.option=value`` strings into {method: {option: value}}."""
    result: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, option = key.strip().partition(".")
        if not sep or not dot or not method or not option:
            raise UsageError(f"--set '{item}': expected METHOD.OPTION=VALUE, e.g. --set prompt.num_virtual_tokens=50")
        result.setdefault(method, {})[option] = value
    return result
