"""Custom tasks from YAML files: a task is data, so a user's task needs no Python.

The format is documented in docs/tasks.md. Everything is checked when the file is loaded, before any
model runs; each problem is one UsageError line naming the file, the key and the fix. This module
reads the YAML mapping and decides how a data row becomes an example and how it is checked;
tuning_bench/taskfiles/taskdata.py reads the rows (files at load time; a Hugging Face dataset only when its
splits are first needed).
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tuning_bench.api.errors import UsageError, did_you_mean
from tuning_bench.api.kinds import TaskKind
from tuning_bench.metrics import SHIPPED_METRICS, metric_direction
from tuning_bench.api.task import Task, template_fields
from tuning_bench.api.bounded import MAX_VALUES, brief_repr, too_large
from tuning_bench.taskfiles.taskdata import Checker, data_loader

REQUIRED_KEYS = ("name", "kind", "instruction", "data", "input_template", "target_template", "metrics")
OPTIONAL_KEYS = ("description", "fields", "labels", "headline", "higher_is_better", "max_new_tokens", "split")
ALLOWED_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A hub metric name: "bleu", "sacrebleu", "owner/metric".
_HUB_METRIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def load_task_file(path: str | Path, registered_metrics: Mapping[str, bool] | None = None) -> Task:
    """Read, check and build the Task a YAML task file describes.

    Raises UsageError (one line naming the file, the key and the fix) for anything wrong with the file
    or its data files. ``registered_metrics`` maps the metrics plugins registered to higher-is-better.
    """
    registered = dict(registered_metrics or {})
    path = Path(path)
    check = Checker(path)
    spec = _read_yaml(path, check)
    _check_keys(spec, check)

    name = _text(spec, "name", check)
    if not _NAME.match(name):
        raise check.fail(
            "name",
            f"'{name}' is not a usable task name",
            "use letters, digits, '-', '_' or '.', e.g. name: support-tickets",
        )
    kind = _kind(spec, check)
    instruction = _text(spec, "instruction", check)
    description = _text(spec, "description", check) if "description" in spec else f"Custom task from {path.name}"
    input_template = _template(spec, "input_template", check)
    target_template = _template(spec, "target_template", check)
    fields = _fields(spec, check)
    labels = _labels(spec, kind, check)
    metrics = _metrics(spec, check, registered)
    headline = _headline(spec, metrics, check, registered)
    higher_is_better = spec.get("higher_is_better", registered.get(headline, metric_direction(headline)))
    if not isinstance(higher_is_better, bool):
        raise check.fail(
            "higher_is_better", f"expected true or false, got {brief_repr(higher_is_better)}", "write higher_is_better: true"
        )
    max_new_tokens = spec.get("max_new_tokens", 64)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise check.fail(
            "max_new_tokens",
            f"expected a positive whole number, got {brief_repr(max_new_tokens)}",
            "write e.g. max_new_tokens: 32",
        )

    templates = {"input_template": input_template, "target_template": target_template}
    rows_to_example = _example_builder(fields)
    validate = _example_validator(templates, fields, kind, labels, check)
    load_splits = data_loader(spec, path, rows_to_example, validate, check)

    return Task(
        name=name,
        description=description,
        kind=kind,
        instruction=instruction,
        input_template=input_template,
        target_template=target_template,
        load_splits=load_splits,
        metrics=tuple(metrics),
        headline=headline,
        higher_is_better=higher_is_better,
        labels=tuple(labels),
        max_new_tokens=max_new_tokens,
        source=str(path),
    )


# --- the YAML mapping ------------------------------------------------------------------------------


def _read_yaml(path: Path, check: Checker) -> dict[str, Any]:
    if not path.is_file():
        raise check.fail(None, "task file not found", "check the path")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise check.fail(None, f"not valid YAML{at} ({problem})", "fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise check.fail(None, "not a UTF-8 text file", "save it as UTF-8") from None
    if too_large(spec):
        raise check.fail(None, f"expands to more than {MAX_VALUES:,} values (YAML aliases nested too deep)",
                         "write the values out instead of through nested aliases")
    if not isinstance(spec, dict):
        raise check.fail(
            None,
            "expected a mapping of keys (name: ..., kind: ..., ...) at the top level",
            "see docs/tasks.md for the format",
        )
    return spec


def _check_keys(spec: Mapping[str, Any], check: Checker) -> None:
    for key in spec:
        if key not in ALLOWED_KEYS:
            raise UsageError(f"{check.path}: {did_you_mean('key', str(key), ALLOWED_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in spec:
            raise check.fail(key, "required but missing", f"add {key}: ... (see docs/tasks.md)")


def _text(spec: Mapping[str, Any], key: str, check: Checker) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise check.fail(key, f"expected a non-empty string, got {brief_repr(value)}", f'write {key}: "..."')
    return value


def _kind(spec: Mapping[str, Any], check: Checker) -> TaskKind:
    value = spec["kind"]
    kinds = [kind.value for kind in TaskKind]
    if value not in kinds:
        raise check.fail(
            "kind",
            str(did_you_mean("kind", str(value), kinds)).rstrip("."),
            f"write kind: {kinds[0]} or kind: {kinds[1]}",
        )
    return TaskKind(value)


def _template(spec: Mapping[str, Any], key: str, check: Checker) -> str:
    template = _text(spec, key, check)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise check.fail(
            key, f"not a valid template ({exc})", "write fields as {name} and literal braces as {{ and }}"
        ) from None
    for name in names:
        if not name.isidentifier():
            raise check.fail(
                key,
                f"'{{{name}}}' is not a plain field name",
                "use {column_name}, or map an awkward column name to one under fields:",
            )
    return template


def _fields(spec: Mapping[str, Any], check: Checker) -> dict[str, str]:
    fields = spec.get("fields", {}) or {}
    if not isinstance(fields, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise check.fail(
            "fields",
            f"expected a mapping of template field to data column, got {brief_repr(fields)}",
            "write e.g. fields: {text: body, label: category}",
        )
    for name in fields:
        if not name.isidentifier():
            raise check.fail(
                "fields", f"'{name}' is not a plain field name", "use letters, digits and '_' for template field names"
            )
    return fields


def _labels(spec: Mapping[str, Any], kind: TaskKind, check: Checker) -> list[str]:
    labels = spec.get("labels")
    if kind is TaskKind.CLASSIFICATION and labels is None:
        raise check.fail("labels", "required for a classification task", "add labels: [positive, negative]")
    if labels is None:
        return []
    if isinstance(labels, list) and any(isinstance(label, bool) for label in labels):
        raise check.fail(
            "labels",
            "YAML reads yes/no/true/false/on/off as booleans, not label words",
            "quote them: labels: ['yes', 'no']",
        )
    if isinstance(labels, list):
        labels = [str(label) if isinstance(label, int) else label for label in labels]
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(label, str) and label.strip() for label in labels)
    ):
        raise check.fail(
            "labels",
            f"expected a list of at least two non-empty strings, got {brief_repr(labels)}",
            "write e.g. labels: [positive, negative]",
        )
    if len(set(labels)) != len(labels):
        raise check.fail("labels", "a label is listed twice", "list each label once")
    if kind is TaskKind.GENERATION:
        raise check.fail(
            "labels", "only a classification task has labels", "remove labels:, or set kind: classification"
        )
    return labels


def _metrics(spec: Mapping[str, Any], check: Checker, registered: Mapping[str, bool]) -> list[str]:
    metrics = spec["metrics"]
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise check.fail(
            "metrics",
            f"expected a non-empty list of metric names, got {brief_repr(metrics)}",
            f"write e.g. metrics: [{SHIPPED_METRICS[0]}]",
        )
    known = (*SHIPPED_METRICS, *registered)
    squashed = {re.sub(r"[^a-z0-9]", "", name.lower()): name for name in known}
    for metric in metrics:
        if metric in known:
            continue
        # "rougeL", "macro-f1" or "acuracy" is a misspelt known metric, not a hub one that fails later
        # (the cutoff keeps real hub names such as "rouge" apart from "rouge_l").
        shipped = squashed.get(re.sub(r"[^a-z0-9]", "", metric.lower())) or next(
            iter(difflib.get_close_matches(metric, known, n=1, cutoff=0.85)), None)
        if shipped:
            raise check.fail("metrics", f"unknown metric '{metric}'", f"did you mean {shipped}?")
        if not _HUB_METRIC.match(metric):
            raise check.fail(
                "metrics",
                f"'{metric}' is neither a shipped metric nor a Hugging Face metric name",
                f"use one of {', '.join(known)} or a hub name such as bleu",
            )
    if len(set(metrics)) != len(metrics):
        raise check.fail("metrics", "a metric is listed twice", "list each metric once")
    return metrics


def _headline(spec: Mapping[str, Any], metrics: list[str], check: Checker, registered: Mapping[str, bool]) -> str:
    if "headline" not in spec:
        return metrics[0]
    headline = _text(spec, "headline", check)
    # A hub metric may report several numbers under its own keys (e.g. rouge's rougeL).
    if headline not in metrics and all(m in SHIPPED_METRICS or m in registered for m in metrics):
        raise check.fail(
            "headline",
            f"'{headline}' is not one of the metrics ({', '.join(metrics)})",
            f"write headline: {metrics[0]}",
        )
    return headline


# --- examples ----------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    """A data value as the string field an example holds; nested values become compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _example_builder(fields: Mapping[str, str]) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    """Turns a data row into an example: every column as a string, plus the mapped template fields."""

    def build(row: Mapping[str, Any]) -> dict[str, str]:
        example = {str(column): _as_text(value) for column, value in row.items()}
        for field_name, column in fields.items():
            if column in row:
                example[field_name] = _as_text(row[column])
        return example

    return build


def _example_validator(
    templates: Mapping[str, str],
    fields: Mapping[str, str],
    kind: TaskKind,
    labels: list[str],
    check: Checker,
) -> Callable[[Mapping[str, Any], dict[str, str], str], None]:
    """Checks one row: every template field resolves, and a classification target is a declared label."""

    def validate(row: Mapping[str, Any], example: dict[str, str], where: str) -> None:
        columns = ", ".join(map(str, row)) or "none"
        for name, column in fields.items():
            if column not in row:
                raise check.fail(
                    "fields",
                    f"{name}: column '{column}' is missing from {where} (columns: {columns})",
                    "map the field to an existing column",
                )
        for key, template in templates.items():
            for name in template_fields(template):
                if name not in fields and name not in row:
                    raise check.fail(
                        key,
                        f"field {{{name}}} is missing from {where} (columns: {columns})",
                        "rename the field, or map it to a column under fields:",
                    )
        rendered = {}
        for key, template in templates.items():
            try:
                rendered[key] = template.format_map(example)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise check.fail(
                    key, f"cannot be filled in for {where} ({exc})", "drop the format spec after ':' in the template"
                ) from None
        if kind is TaskKind.CLASSIFICATION:
            label = rendered["target_template"]
            if label not in labels:
                raise check.fail(
                    "labels",
                    f"{where} has label '{label}', which labels does not declare ({', '.join(labels)})",
                    f"add '{label}' to labels: or fix the row",
                )

    return validate


# --- tasks written in Python ------------------------------------------------------------------------


def check_task(task: Task, where: str, registered_metrics: Mapping[str, bool] | None = None) -> None:
    """Check a task a plugin defines in Python with the rules a task file's keys get.

    Raises UsageError, one line starting with ``where``. The examples are checked by ``check_examples``
    when the splits are first needed.
    """
    check = Checker(where)  # type: ignore[arg-type]  # a description stands in for the file path
    kind = getattr(task, "kind", None)
    spec = {
        "name": task.name, "kind": getattr(kind, "value", kind), "instruction": task.instruction,
        "input_template": task.input_template, "target_template": task.target_template,
        "labels": list(task.labels) if task.labels else None, "metrics": list(task.metrics),
        "headline": task.headline,
    }
    name = _text(spec, "name", check)
    if not _NAME.match(name):
        raise check.fail("name", f"'{name}' is not a usable task name", "use letters, digits, '-', '_' or '.'")
    kind = _kind(spec, check)
    _text(spec, "instruction", check)
    for key in ("input_template", "target_template"):
        _template(spec, key, check)
    _labels(spec, kind, check)
    registered = dict(registered_metrics or {})
    _headline(spec, _metrics(spec, check, registered), check, registered)
    if not isinstance(task.higher_is_better, bool):
        raise check.fail("higher_is_better", f"expected True or False, got {task.higher_is_better!r}")
    if isinstance(task.max_new_tokens, bool) or not isinstance(task.max_new_tokens, int) or task.max_new_tokens < 1:
        raise check.fail("max_new_tokens", f"expected a positive whole number, got {task.max_new_tokens!r}")


def check_examples(task: Task, where: str) -> None:
    """Check a Python task's splits as a task file's rows are checked: every template field is present
    and a classification target is a declared label; the test split is not empty."""
    check = Checker(where)  # type: ignore[arg-type]
    templates = {"input_template": task.input_template, "target_template": task.target_template}
    validate = _example_validator(templates, {}, task.kind, list(task.labels), check)
    splits = task.splits()
    if not splits["test"]:
        raise check.fail("load_splits", "the test split is empty", "return at least one test example")
    for split_name, examples in splits.items():
        for index, example in enumerate(examples):
            if not isinstance(example, Mapping):
                raise check.fail("load_splits", f"{split_name} example {index} is {example!r}, not a dict of fields")
            validate(example, dict(example), f"{split_name} example {index}")
