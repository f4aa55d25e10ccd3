"""PEFT configurations as data: an ``adapter_config.json`` or inline fields, checked against PEFT's config class.

A PEFT config is a dataclass per tuner type (``LoraConfig``, ``VeraConfig``, ...). Its fields and their
annotations are the schema: a field that is not one of them, or a value of another type, is a
``UsageError`` naming the field before anything runs. Fields that describe where an adapter was saved
or how it is loaded (``IGNORED``) are dropped: tbench decides those for every cell.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError, did_you_mean

# Fields of a saved adapter_config.json that tbench sets itself: the task type follows the model's kind,
# training needs inference_mode off, and the base model is the run's, not the one the file was saved with.
IGNORED = frozenset({"base_model_name_or_path", "revision", "inference_mode", "task_type", "auto_mapping",
                     "peft_version", "peft_type"})
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def config_class(peft_type: Any, where: str) -> type:
    """PEFT's config class for a tuner type (case does not matter); an unknown type is one line with the known ones."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    by_name = {str(getattr(t, "value", t)): cls for t, cls in PEFT_TYPE_TO_CONFIG_MAPPING.items()}
    name = str(peft_type).strip().upper()
    if name not in by_name:
        raise UsageError(f"{where}: {did_you_mean('PEFT type', str(peft_type), by_name)}")
    return by_name[name]


def read_config_file(path: str, where: str) -> dict[str, Any]:
    """The fields of a PEFT ``adapter_config.json`` (or a folder holding one), read as JSON."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "adapter_config.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{where}: no such PEFT config file '{file}'; give the path of an adapter_config.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read '{file}' ({type(exc).__name__}); give a readable adapter_config.json") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: '{file}' is not valid JSON (line {exc.lineno}: {exc.msg}); "
                         "a PEFT adapter_config.json is one JSON object") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise UsageError(f"{where}: '{file}' is not a PEFT adapter_config.json (a JSON object with a peft_type, "
                         'e.g. {"peft_type": "LORA", "r": 8})')
    return data


def field_types(config_cls: type) -> dict[str, Any]:
    """The fields a config class takes, each with its annotation (``Any`` where it cannot be resolved)."""
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # an annotation naming a type only imported for type checkers: check those fields loosely
        hints = {}
    types_by_name = {}
    for f in dataclasses.fields(config_cls):
        if f.init:
            hint = hints.get(f.name, Any)
            # a field annotated `str` with default None (AdaptionPromptConfig.target_modules) takes null too
            types_by_name[f.name] = typing.Optional[hint] if f.default is None and hint is not Any else hint
    return types_by_name


def conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON-like value fits a dataclass annotation (lists stand for tuples and sets, as in JSON)."""
    if hint is Any or isinstance(hint, (typing.TypeVar, str)):
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(conforms(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return any(value in (member.value, member.name) for member in hint)
    container = origin or hint
    if container in (list, tuple, set, frozenset, Sequence):
        if not isinstance(value, list):
            return False
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args))
        return not args or all(conforms(v, args[0]) for v in value)
    if container in (dict, Mapping):
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)  # a nested config (LoftQ, EVA, ...) is written as a JSON object
    return True  # a type JSON cannot express (a module, a callable): PEFT checks it


def describe(hint: Any) -> str:
    """An annotation in words: ``list of str, str or null``."""
    if hint is None or hint is type(None):
        return "null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return ", ".join(describe(arg) for arg in args[:-1]) + " or " + describe(args[-1])
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (list, tuple, set) and args:
        return f"list of {describe(args[0])}"
    if origin is dict:
        return "JSON object"
    if dataclasses.is_dataclass(hint):
        return "JSON object"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in hint)
    return {bool: "true/false", int: "integer", float: "number", str: "string"}.get(hint, getattr(hint, "__name__", str(hint)))


def parse_text(text: str, hint: Any) -> Any:
    """The value of ``--set peft.FIELD=TEXT`` for a field of this annotation.

    JSON where it fits the field (numbers, true/false, null, ``[...]``, ``{...}``), else the text itself
    (``bias=none``). Where the field takes a list, a comma list is one (``target_modules=q_proj,v_proj``),
    and so is a single name: PEFT reads a bare string there as a regular expression over full module
    paths, which a name alone never matches (give a regular expression as a JSON string, ``"\".*proj\""``);
    PEFT's shorthand ``all-linear`` stays as it is.
    """
    stripped = text.strip()
    if stripped.startswith(("[", "{", '"')):
        return _json_or_text(stripped)
    if stripped.lower() in _BOOL_WORDS and conforms(True, hint):
        return _BOOL_WORDS[stripped.lower()]
    scalar = _json_or_text(stripped)
    items = [_json_or_text(part.strip()) for part in stripped.split(",") if part.strip()]
    if conforms(items, hint) and ("," in stripped or (isinstance(scalar, str) and scalar != "all-linear")):
        return items
    if conforms(scalar, hint):
        return scalar
    return stripped if conforms(stripped, hint) else scalar  # a number given to a text field stays text


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def check_fields(config_cls: type, fields: Mapping[str, Any], owner: str, where: str,
                 text: Collection[str] = ()) -> dict[str, Any]:
    """Each field checked against the class; ``IGNORED`` ones dropped. One line per mistake.

    A field the class lacks is refused, except one that is not given as text and is empty or off (null, {},
    [] or false): files saved by another PEFT version carry such fields (OFT's alpha_pattern: {}, C3A's
    fan_in_fan_out: false), and PEFT itself drops unknown fields when it loads a file.

    The string values of the fields named in ``text`` are command-line text, read by ``parse_text``; other
    values are typed already (JSON from a file, YAML, a planned config) and are taken as they are."""
    known = field_types(config_cls)
    checked: dict[str, Any] = {}
    for name, raw in fields.items():
        if name in IGNORED:
            continue
        if name not in known and name not in text and (raw is None or raw is False or raw in ({}, [])):
            continue  # empty or switched off: it asks for nothing this version could do
        if name not in known:
            err = did_you_mean("field", str(name), [k for k in known if k not in IGNORED], of=f" of PEFT's {config_cls.__name__}")
            raise UsageError(f"{where}: {err}")
        hint = known[name]
        value = parse_text(raw, hint) if isinstance(raw, str) and name in text else raw
        if not conforms(value, hint):
            raise UsageError(f"{where}: {owner}.{name} must be {describe(hint)} ({config_cls.__name__}.{name}), "
                             f"got {json.dumps(raw) if _jsonable(raw) else repr(raw)}")
        checked[name] = value
    return checked


def build_config(peft_type: str, fields: Mapping[str, Any], task_type: str | None) -> Any:
    """PEFT's config object for checked fields, in training mode, for the given task type."""
    config_cls = config_class(peft_type, "peft")
    return config_cls(**dict(fields), task_type=task_type, inference_mode=False)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
