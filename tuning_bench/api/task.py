"""The Task interface: a task is mostly data (template, fields, metric, splits)."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuning_bench.api.kinds import TaskKind

Example = Mapping[str, Any]
Splits = dict[str, list[dict[str, Any]]]
SPLIT_NAMES = ("train", "validation", "test")


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format`` template refers to, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@dataclass(eq=False)
class Task:
    """A shared problem every method is trained and judged on.

    An example is a dict of fields. ``input_template`` turns it into the text the model reads and
    ``target_template`` into the text it must produce (for classification: one of ``labels``).
    ``instruction`` is the plain-language request every method sees in front of the input (the
    hard-prompt baselines rely on it alone). ``metrics`` are metric names (see
    ``tuning_bench.metrics``); ``headline`` is the one used to sort and plot, with
    ``higher_is_better`` saying which way is good. ``load_splits`` returns the train, validation and
    test lists; it is called once and cached.
    """

    name: str
    description: str
    kind: TaskKind
    instruction: str
    input_template: str
    target_template: str
    load_splits: Callable[[], Splits]
    metrics: tuple[str, ...]
    headline: str
    higher_is_better: bool = True
    labels: tuple[str, ...] = ()
    max_new_tokens: int = 64
    source: str = "built-in"
    _splits: Splits | None = field(default=None, repr=False)

    def splits(self) -> Splits:
        """The data, as {"train": [...], "validation": [...], "test": [...]}."""
        if self._splits is None:
            loaded = self.load_splits()
            self._splits = {name: list(loaded.get(name, [])) for name in SPLIT_NAMES}
        return self._splits

    def render_input(self, example: Example) -> str:
        """The text the model reads for this example (without instruction or method context)."""
        return self.input_template.format_map(example)

    def render_target(self, example: Example) -> str:
        """The text the model must produce for this example."""
        return self.target_template.format_map(example)

    def fingerprint(self) -> str:
        """A hash of everything about the task that affects results: its definition and its data."""
        definition = {
            "name": self.name,
            "kind": self.kind.value,
            "instruction": self.instruction,
            "input_template": self.input_template,
            "target_template": self.target_template,
            "labels": list(self.labels),
            "metrics": list(self.metrics),
            "max_new_tokens": self.max_new_tokens,
            "data": self.splits(),
        }
        blob = json.dumps(definition, sort_keys=True, ensure_ascii=False, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description for listings and result records."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind.value,
            "metrics": list(self.metrics),
            "headline": self.headline,
            "higher_is_better": self.higher_is_better,
            "labels": list(self.labels),
            "source": self.source,
        }


def label_index(task: Task, example: Example) -> int:
    """The position of an example's label in ``task.labels`` (classification tasks)."""
    return task.labels.index(task.render_target(example))

