"""A task file's data: rows from JSONL or CSV files or a Hugging Face dataset, built into examples,
checked, and split.

The YAML side (tuning_bench/taskfiles/taskfile.py) decides how a row becomes an example and how it is checked;
this module reads the rows and applies both. Errors are one line naming the task file, the key and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tuning_bench.api.bounded import brief_repr
from tuning_bench.api.errors import UsageError, did_you_mean
from tuning_bench.api.task import SPLIT_NAMES, Splits

DEFAULT_SPLIT = {"train": 0.7, "validation": 0.1, "test": 0.2}
SPLIT_SEED = 0  # the shuffle before splitting one data file is fixed so results are comparable
DATA_SUFFIXES = (".jsonl", ".csv")

RowBuilder = Callable[[Mapping[str, Any]], dict[str, str]]
RowValidator = Callable[[Mapping[str, Any], dict[str, str], str], None]


def _print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


warn: Callable[[str], None] = _print_warning  # cell processes silence it: the parent has already said it


def shared_examples(splits: Mapping[str, list[dict[str, str]]]) -> str | None:
    """Describe examples that appear in more than one split (data leakage), or None if the splits are disjoint."""
    seen: dict[tuple, str] = {}
    counts: dict[tuple[str, str], int] = {}
    for name in SPLIT_NAMES:
        for example in splits.get(name, []):
            identity = tuple(sorted(example.items()))
            first = seen.setdefault(identity, name)
            if first != name:
                counts[(first, name)] = counts.get((first, name), 0) + 1
    if not counts:
        return None
    return "examples shared between splits: " + ", ".join(f"{n} in {a} and {b}" for (a, b), n in counts.items())


class Checker:
    """Builds the one-line errors for one task file."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str | None, problem: str, fix: str = "") -> UsageError:
        where = f"{self.path}: key '{key}': " if key else f"{self.path}: "
        return UsageError(where + problem + (f"; {fix}" if fix else ""))


def data_loader(
    spec: Mapping[str, Any],
    path: Path,
    build: RowBuilder,
    validate: RowValidator,
    check: Checker,
) -> Callable[[], Splits]:
    data = spec["data"]
    if "split" in spec and not isinstance(data, str):
        raise check.fail("split", "only applies when data is one file", "remove split:, or give data: as one file path")

    if isinstance(data, dict) and "hf_dataset" in data:
        return _hub_loader(data, build, validate, check)

    if isinstance(data, str):
        fractions = _fractions(spec.get("split", DEFAULT_SPLIT), check)
        examples = _read_examples(data, path, build, validate, check)
        splits = _split(examples, fractions, data, check)
    elif isinstance(data, dict):
        unknown = sorted(set(data) - set(SPLIT_NAMES))
        if unknown:
            raise check.fail(
                "data",
                f"unknown split '{unknown[0]}'",
                "use train, validation and test (or hf_dataset: for a hub dataset)",
            )
        missing = [name for name in SPLIT_NAMES if name not in data]
        if missing:
            raise check.fail(
                "data",
                f"no file for the {missing[0]} split",
                f"add {missing[0]}: path/to/{missing[0]}.jsonl under data:",
            )
        splits = {}
        for split_name in SPLIT_NAMES:
            if not isinstance(data[split_name], str):
                raise check.fail(
                    "data",
                    f"{split_name}: expected a file path, got {brief_repr(data[split_name])}",
                    f"write {split_name}: {split_name}.jsonl",
                )
            splits[split_name] = _read_examples(data[split_name], path, build, validate, check)
    else:
        raise check.fail(
            "data", f"expected a file path or a mapping, got {brief_repr(data)}", "write data: examples.jsonl (see docs/tasks.md)"
        )
    leak = shared_examples(splits)
    if leak:
        warn(f"{path}: {leak}; scores on the test split overstate quality, remove the repeated examples")
    return lambda: splits


def _read_examples(
    relative: str,
    task_path: Path,
    build: RowBuilder,
    validate: RowValidator,
    check: Checker,
) -> list[dict[str, str]]:
    file = (task_path.parent / relative).resolve()
    if file.suffix.lower() not in DATA_SUFFIXES:
        raise check.fail("data", f"'{relative}' is neither a .jsonl nor a .csv file", "convert it to JSON Lines or CSV")
    if not file.is_file():
        raise check.fail(
            "data", f"file '{relative}' not found (looked for {file})", "paths are relative to the task file"
        )
    rows = _jsonl_rows(file, relative, check) if file.suffix.lower() == ".jsonl" else _csv_rows(file, relative, check)
    examples = []
    for where, row in rows:
        example = build(row)
        validate(row, example, where)
        examples.append(example)
    if not examples:
        raise check.fail("data", f"'{relative}' holds no examples", "add rows to it")
    return examples


def _decoded_lines(file: Path, relative: str, check: Checker) -> list[str]:
    """The file's lines as text; a byte-order mark is dropped, bytes that are not UTF-8 fail naming the line."""
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise check.fail(
            "data", f"{relative} line {line} is not UTF-8 text (byte 0x{raw[exc.start]:02x})", "save the file as UTF-8"
        ) from None
    # Only \n, \r and \r\n end a line (str.splitlines would also split inside text at \x85 or \u2028).
    return io.StringIO(text, newline="").readlines()


def _jsonl_rows(file: Path, relative: str, check: Checker) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(_decoded_lines(file, relative, check), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            problem = f"{relative} line {number} is not valid JSON ({exc.msg} at column {exc.colno})"
            raise check.fail("data", problem, "write one JSON object per line") from None
        if not isinstance(row, dict):
            raise check.fail(
                "data",
                f"{relative} line {number} is not a JSON object",
                'write one object per line, e.g. {"text": "...", "label": "..."}',
            )
        rows.append((f"{relative} line {number}", row))
    return rows


def _csv_rows(file: Path, relative: str, check: Checker) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    # strict: a quote left open is an error at the end of the file instead of swallowing the rows after it
    reader = csv.DictReader(_decoded_lines(file, relative, check), strict=True)
    first_line = 1
    try:
        header = reader.fieldnames or []
        first_line = reader.line_num + 1
        for row in reader:
            where = f"{relative} line {first_line}"
            if None in row:
                raise check.fail(
                    "data", f"{where} has more cells than the header", "quote cells that contain commas"
                )
            if any(value is None for value in row.values()):
                cells = sum(value is not None for value in row.values())
                raise check.fail(
                    "data",
                    f"{where} has {cells} cells, the header {len(header)}",
                    "give every row a cell for each column (an empty one is written \"\")",
                )
            rows.append((where, row))
            first_line = reader.line_num + 1
    except csv.Error as exc:
        raise check.fail(
            "data",
            f"{relative} line {first_line} is not valid CSV ({exc})",
            "close the quote that starts there, or fix the quoting",
        ) from None
    return rows


def _fractions(value: Any, check: Checker) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != set(SPLIT_NAMES):
        raise check.fail(
            "split",
            f"expected fractions for train, validation and test, got {brief_repr(value)}",
            "write split: {train: 0.7, validation: 0.1, test: 0.2}",
        )
    for name, fraction in value.items():
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise check.fail(
                "split",
                f"{name}: expected a fraction between 0 and 1, got {brief_repr(fraction)}",
                "write split: {train: 0.7, validation: 0.1, test: 0.2}",
            )
    if abs(sum(value.values()) - 1) > 1e-6:
        raise check.fail(
            "split", f"the fractions add up to {sum(value.values()):g}, not 1", "make train + validation + test = 1"
        )
    return {name: float(value[name]) for name in SPLIT_NAMES}


def _split(examples: list[dict[str, str]], fractions: Mapping[str, float], relative: str, check: Checker) -> Splits:
    shuffled = list(examples)
    random.Random(SPLIT_SEED).shuffle(shuffled)
    n_train = round(len(shuffled) * fractions["train"])
    n_validation = round(len(shuffled) * fractions["validation"])
    splits = {
        "train": shuffled[:n_train],
        "validation": shuffled[n_train : n_train + n_validation],
        "test": shuffled[n_train + n_validation :],
    }
    for name, rows in splits.items():
        if not rows:
            raise check.fail(
                "split",
                f"{len(examples)} examples in '{relative}' leave the {name} split empty",
                "add data or raise that fraction",
            )
    return splits


def _hub_loader(
    data: Mapping[str, Any],
    build: RowBuilder,
    validate: RowValidator,
    check: Checker,
) -> Callable[[], Splits]:
    allowed = ("hf_dataset", "hf_config", "splits")
    for key in data:
        if key not in allowed:
            raise check.fail("data", str(did_you_mean("data key", str(key), allowed)).rstrip("."), "see docs/tasks.md")
    dataset = data["hf_dataset"]
    config = data.get("hf_config")
    split_names = data.get("splits", {name: name for name in SPLIT_NAMES})
    if not isinstance(dataset, str) or not dataset:
        raise check.fail(
            "data", f"hf_dataset: expected a dataset name, got {brief_repr(dataset)}", "write hf_dataset: owner/name"
        )
    if config is not None and not isinstance(config, str):
        raise check.fail(
            "data", f"hf_config: expected a string, got {brief_repr(config)}", "write hf_config: name, or leave it out"
        )
    if (
        not isinstance(split_names, dict)
        or set(split_names) != set(SPLIT_NAMES)
        or not all(isinstance(v, str) for v in split_names.values())
    ):
        raise check.fail(
            "data",
            f"splits: expected hub split names for train, validation and test, got {brief_repr(split_names)}",
            "write splits: {train: train, validation: validation, test: test}",
        )

    def load() -> Splits:
        try:
            import datasets  # only hub users pay for this import, and only when the data is needed
        except ImportError:
            raise check.fail("data", "hf_dataset needs the 'datasets' package", "pip install datasets") from None
        splits: Splits = {}
        for name in SPLIT_NAMES:
            try:
                rows = datasets.load_dataset(dataset, config, split=split_names[name])
            except Exception as exc:  # offline, no such dataset or split: the user has to change the file
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise check.fail(
                    "data",
                    f"could not load {dataset} split '{split_names[name]}' ({reason})",
                    "check the name and your network",
                ) from None
            examples = []
            for index, row in enumerate(rows):
                example = build(row)
                validate(row, example, f"{dataset} {split_names[name]} row {index}")
                examples.append(example)
            if not examples:
                raise check.fail(
                    "data", f"{dataset} split '{split_names[name]}' is empty", "choose another split under splits:"
                )
            splits[name] = examples
        return splits

    return load
