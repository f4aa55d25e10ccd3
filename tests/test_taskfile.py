"""Custom YAML task files: good files load; each kind of mistake is one line naming file and key."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tuning_bench.api.errors import UsageError
from tuning_bench.api.kinds import TaskKind
from tuning_bench.taskfiles.taskfile import load_task_file

REPO = Path(__file__).resolve().parent.parent

GOOD_YAML = """\
name: tiny-sentiment
kind: classification
instruction: "Answer with one word: positive or negative."
data: reviews.jsonl
input_template: "Review: {text}"
target_template: "{label}"
labels: [positive, negative]
metrics: [accuracy, macro_f1]
"""


def write_rows(path: Path, count: int = 20) -> None:
    rows = [{"text": f"review number {i}", "label": "positive" if i % 2 else "negative"} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_task(tmp_path: Path, yaml_text: str = GOOD_YAML, rows: int = 20) -> Path:
    write_rows(tmp_path / "reviews.jsonl", rows)
    path = tmp_path / "task.yaml"
    path.write_text(yaml_text)
    return path


def test_a_jsonl_task_loads_and_splits_by_default_fractions(tmp_path):
    path = make_task(tmp_path)
    task = load_task_file(path)
    assert task.name == "tiny-sentiment"
    assert task.kind is TaskKind.CLASSIFICATION
    assert task.labels == ("positive", "negative")
    assert task.metrics == ("accuracy", "macro_f1")
    assert task.headline == "accuracy" and task.higher_is_better is True
    assert task.source == str(path)
    splits = task.splits()
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [14, 2, 4]
    texts = [e["text"] for rows in splits.values() for e in rows]
    assert sorted(texts) == sorted(f"review number {i}" for i in range(20))
    assert task.render_input(splits["train"][0]).startswith("Review: review number")
    # The shuffle is seeded: loading twice gives the same splits.
    assert load_task_file(path).splits() == splits


def test_split_fractions_fields_and_options(tmp_path):
    yaml_text = GOOD_YAML.replace('input_template: "Review: {text}"', 'input_template: "Review: {body}"')
    yaml_text += "fields: {body: text}\nsplit: {train: 0.5, validation: 0.25, test: 0.25}\nheadline: macro_f1\nmax_new_tokens: 3\n"
    task = load_task_file(make_task(tmp_path, yaml_text))
    assert [len(task.splits()[n]) for n in ("train", "validation", "test")] == [10, 5, 5]
    example = task.splits()["test"][0]
    assert task.render_input(example) == f"Review: {example['text']}"
    assert task.headline == "macro_f1" and task.max_new_tokens == 3


def test_three_files_and_csv(tmp_path):
    for name in ("train", "validation", "test"):
        (tmp_path / f"{name}.csv").write_text(
            'features,description\n"mug, blue",A blue mug.\n"lamp, oak","An oak lamp, warm."\n'
        )
    (tmp_path / "gen.yaml").write_text(
        "name: csv-gen\nkind: generation\ninstruction: Describe it.\n"
        "data: {train: train.csv, validation: validation.csv, test: test.csv}\n"
        'input_template: "Features: {features}"\ntarget_template: "{description}"\nmetrics: [rouge_l]\n'
    )
    task = load_task_file(tmp_path / "gen.yaml")
    assert task.kind is TaskKind.GENERATION and task.labels == ()
    assert task.splits()["validation"][1] == {"features": "lamp, oak", "description": "An oak lamp, warm."}


def test_non_string_values_become_strings(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"x": 5, "y": {"a": 1}}\n{"x": 6, "y": {"a": 2}}\n{"x": 7, "y": {"a": 3}}\n')
    (tmp_path / "t.yaml").write_text(
        "name: j\nkind: generation\ninstruction: Go.\ndata: d.jsonl\nsplit: {train: 0.34, validation: 0.33, test: 0.33}\n"
        'input_template: "{x}"\ntarget_template: "{y}"\nmetrics: [json_field_f1]\n'
    )
    rows = [e for split in load_task_file(tmp_path / "t.yaml").splits().values() for e in split]
    assert sorted(e["x"] for e in rows) == ["5", "6", "7"]
    assert {e["y"] for e in rows} == {'{"a":1}', '{"a":2}', '{"a":3}'}


def test_the_example_task_file_loads():
    task = load_task_file(REPO / "examples" / "tasks" / "support_tickets.yaml")
    splits = task.splits()
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [60, 15, 25]
    assert set(task.labels) == {"billing", "shipping", "technical", "account"}
    assert {task.render_target(e) for e in splits["train"]} == set(task.labels)


def test_a_hub_dataset_is_fetched_only_when_needed(tmp_path, monkeypatch):
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return [{"sentence": f"{split} {i}", "label": ["neg", "pos"][i % 2]} for i in range(4)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    (tmp_path / "hub.yaml").write_text(
        "name: hub-task\nkind: classification\ninstruction: Classify.\n"
        "data: {hf_dataset: someone/reviews, hf_config: en, splits: {train: train, validation: dev, test: test}}\n"
        'input_template: "{sentence}"\ntarget_template: "{label}"\nlabels: [neg, pos]\nmetrics: [accuracy]\n'
    )
    task = load_task_file(tmp_path / "hub.yaml")
    assert calls == []
    assert task.splits()["validation"][0]["sentence"] == "dev 0"
    assert calls == [
        ("someone/reviews", "en", "train"),
        ("someone/reviews", "en", "dev"),
        ("someone/reviews", "en", "test"),
    ]


# --- malformed files: (what to change, the key the message must name, words it must contain) --------------

JSONL_WITH_BAD_LINE_3 = (
    '{"text": "a", "label": "positive"}\n{"text": "b", "label": "negative"}\n{"text": "c", "label": \n'
)
JSONL_WITH_NEUTRAL_ON_LINE_2 = (
    '{"text": "a", "label": "positive"}\n{"text": "b", "label": "neutral"}\n{"text": "c", "label": "negative"}\n'
)

MALFORMED = [
    ("unknown key", lambda y: y + "lables: [a, b]\n", None, "lables", ["Did you mean: labels"]),
    (
        "missing key",
        lambda y: y.replace('instruction: "Answer with one word: positive or negative."\n', ""),
        None,
        "instruction",
        ["required"],
    ),
    (
        "no labels",
        lambda y: y.replace("labels: [positive, negative]\n", ""),
        None,
        "labels",
        ["classification", "add labels: [positive, negative]"],
    ),
    ("metrics type", lambda y: y.replace("metrics: [accuracy, macro_f1]", "metrics: 5"), None, "metrics", ["list"]),
    (
        "kind",
        lambda y: y.replace("kind: classification", "kind: clasification"),
        None,
        "kind",
        ["Did you mean: classification"],
    ),
    ("name", lambda y: y.replace("name: tiny-sentiment", "name: tiny sentiment!"), None, "name", ["letters"]),
    (
        "data missing",
        lambda y: y.replace("data: reviews.jsonl", "data: nowhere.jsonl"),
        None,
        "data",
        ["nowhere.jsonl", "not found"],
    ),
    ("data suffix", lambda y: y.replace("data: reviews.jsonl", "data: reviews.txt"), None, "data", [".jsonl", ".csv"]),
    ("empty data", lambda y: y, "", "data", ["no examples"]),
    ("bad jsonl line", lambda y: y, JSONL_WITH_BAD_LINE_3, "data", ["reviews.jsonl line 3", "not valid JSON"]),
    ("jsonl not object", lambda y: y, '["a", "positive"]\n', "data", ["line 1", "not a JSON object"]),
    (
        "undeclared label",
        lambda y: y,
        JSONL_WITH_NEUTRAL_ON_LINE_2,
        "labels",
        ["'neutral'", "line 2", "add 'neutral' to labels"],
    ),
    (
        "missing field",
        lambda y: y.replace("{text}", "{body}"),
        None,
        "input_template",
        ["{body}", "columns: text, label", "fields:"],
    ),
    (
        "missing mapped column",
        lambda y: y + "fields: {text: message}\n",
        None,
        "fields",
        ["column 'message'", "columns: text, label"],
    ),
    (
        "bad template",
        lambda y: y.replace('"Review: {text}"', '"Review: {text"'),
        None,
        "input_template",
        ["not a valid template"],
    ),
    (
        "positional field",
        lambda y: y.replace('"Review: {text}"', '"Review: {}"'),
        None,
        "input_template",
        ["plain field name"],
    ),
    (
        "misspelt shipped metric",
        lambda y: y.replace("[accuracy, macro_f1]", "[accuracy, macro-F1]"),
        None,
        "metrics",
        ["did you mean macro_f1"],
    ),
    (
        "not a metric name",
        lambda y: y.replace("[accuracy, macro_f1]", "[accuracy, 'my metric!']"),
        None,
        "metrics",
        ["'my metric!'"],
    ),
    ("headline", lambda y: y + "headline: rouge_l\n", None, "headline", ["not one of the metrics"]),
    ("higher_is_better", lambda y: y + "higher_is_better: sometimes\n", None, "higher_is_better", ["true or false"]),
    ("max_new_tokens", lambda y: y + "max_new_tokens: -1\n", None, "max_new_tokens", ["positive whole number"]),
    ("split sum", lambda y: y + "split: {train: 0.7, validation: 0.2, test: 0.2}\n", None, "split", ["add up to 1.1"]),
    (
        "split empty",
        lambda y: y + "split: {train: 0.9, validation: 0.01, test: 0.09}\n",
        None,
        "split",
        ["validation split empty"],
    ),
    (
        "split with files",
        lambda y: (
            y.replace(
                "data: reviews.jsonl", "data: {train: reviews.jsonl, validation: reviews.jsonl, test: reviews.jsonl}"
            )
            + "split: {train: 0.7, validation: 0.1, test: 0.2}\n"
        ),
        None,
        "split",
        ["one file"],
    ),
    (
        "data mapping",
        lambda y: y.replace("data: reviews.jsonl", "data: {train: reviews.jsonl, test: reviews.jsonl}"),
        None,
        "data",
        ["validation"],
    ),
    (
        "yes/no labels",
        lambda y: y.replace("labels: [positive, negative]", "labels: [yes, no]"),
        None,
        "labels",
        ["quote them"],
    ),
    (
        "labels on generation",
        lambda y: y.replace("kind: classification", "kind: generation"),
        None,
        "labels",
        ["only a classification task"],
    ),
    (
        "hub data keys",
        lambda y: y.replace("data: reviews.jsonl", "data: {hf_dataset: imdb, hf_split: test}"),
        None,
        "data",
        ["hf_split"],
    ),
]


@pytest.mark.parametrize("change, data, key, words", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_task_files_give_one_line_errors(tmp_path, change, data, key, words):
    path = make_task(tmp_path, change(GOOD_YAML))
    if data is not None:
        (tmp_path / "reviews.jsonl").write_text(data)
    with pytest.raises(UsageError) as caught:
        load_task_file(path).splits()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path) + ": ")
    assert f"key '{key}'" in message
    for word in words:
        assert word in message


def test_file_level_problems(tmp_path):
    cases = {
        "missing.yaml": None,
        "syntax.yaml": "name: x\nkind: [generation\n",
        "list.yaml": "- name: x\n",
    }
    expected = {"missing.yaml": "not found", "syntax.yaml": "not valid YAML", "list.yaml": "mapping"}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(UsageError) as caught:
            load_task_file(path)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(str(path)) and expected[name] in message, message


def test_csv_row_with_extra_cells(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nfine,positive\nbad, row,negative\n")
    path = tmp_path / "t.yaml"
    path.write_text(GOOD_YAML.replace("reviews.jsonl", "d.csv"))
    with pytest.raises(UsageError, match=r"key 'data': d\.csv line 3 has more cells"):
        load_task_file(path)


def test_a_yaml_task_with_jsonl_data_runs_end_to_end_on_a_tiny_model(tmp_path):
    """The example task file, through the whole runner: plan, cells, results, reports."""
    from tuning_bench.run.executor import InProcessExecutor
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    example = Path(__file__).resolve().parent.parent / "examples" / "tasks" / "support_tickets.yaml"
    settings = RunSettings(methods=["zero-shot", "lora"], tasks=[], task_files=[str(example)], model="tiny-llama",
                           steps=2, batch_size=4, eval_examples=4, val_examples=2, eval_batch_size=4,
                           out=str(tmp_path / "run"), executor="in-process")
    data = execute(plan_run(settings, load_catalog(["tuning_bench.testing"])), executor=InProcessExecutor(),
                   prepare_model=False)
    assert [c["status"] for c in data["cells"]] == ["ok", "ok"], [c["error"] for c in data["cells"]]
    cell = data["cells"][1]
    assert cell["task_info"]["source"].endswith("support_tickets.yaml")
    assert set(cell["predictions"]) <= set(cell["task_info"]["labels"])
    assert (tmp_path / "run" / "report.html").exists()


def _plan_files(tmp_path, paths):
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.runner import plan_run
    from tuning_bench.run.settings import RunSettings

    settings = RunSettings(methods=["zero-shot"], tasks=[], task_files=[str(p) for p in paths], model="tiny-llama",
                           out=str(tmp_path / "run"))
    return plan_run(settings, load_catalog(["tuning_bench.testing"]))


def test_two_task_files_sharing_a_name_are_refused_naming_both(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = make_task(tmp_path / "a"), make_task(tmp_path / "b")
    with pytest.raises(UsageError, match=r"a/task\.yaml and .*b/task\.yaml both name their task 'tiny-sentiment'"):
        _plan_files(tmp_path, [first, second])


def test_same_file_name_in_two_folders_stays_apart_by_the_yaml_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_task(tmp_path / "a")
    second = make_task(tmp_path / "b", GOOD_YAML.replace("name: tiny-sentiment", "name: other-sentiment"))
    plan = _plan_files(tmp_path, [first, second])
    labels = [job.spec.label for job in plan.jobs]
    assert labels == ["tiny-sentiment/zero-shot/seed 0", "other-sentiment/zero-shot/seed 0"]
    assert len({job.key for job in plan.jobs}) == 2


def test_a_task_file_is_named_by_its_yaml_name_in_records_reports_and_generate(tmp_path):
    """Issue 12 item 8: `name:` names the task everywhere, not the file's path or stem."""
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.executor import InProcessExecutor
    from tuning_bench.run.inference import load_trained
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    (tmp_path / "data").mkdir()
    path = make_task(tmp_path / "data", GOOD_YAML.replace("name: tiny-sentiment", "name: shop-moods"))
    out = tmp_path / "run"
    settings = RunSettings(methods=["zero-shot", "lora"], tasks=[], task_files=[str(path)], model="tiny-llama",
                           steps=2, batch_size=4, eval_examples=4, val_examples=2, eval_batch_size=4,
                           out=str(out), executor="in-process")
    catalog = load_catalog(["tuning_bench.testing"])
    data = execute(plan_run(settings, catalog), executor=InProcessExecutor(), prepare_model=False)
    assert [c["status"] for c in data["cells"]] == ["ok", "ok"], [c["error"] for c in data["cells"]]
    assert {c["task"] for c in data["cells"]} == {"shop-moods"}
    assert data["run"]["tasks"] == ["shop-moods"] and list(data["tasks"]) == ["shop-moods"]
    assert [v["task"] for v in data["verdicts"]] == ["shop-moods"]
    report = (out / "report.md").read_text()
    assert "shop-moods" in report and "task.yaml" not in report.split("How measured")[0]
    trained = load_trained(out, catalog, "lora", task="shop-moods")
    assert trained.task.name == "shop-moods"
