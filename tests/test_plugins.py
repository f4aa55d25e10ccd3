"""The plugin system: hooks, typed registration, duplicates, failures, load restrictions."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import sys
import types

import pytest
from conftest import run_tbench

from tuning_bench import Method, ModelSource, Task
from tuning_bench.api.errors import PluginError, UsageError
from tuning_bench.api.method import learning_rate
from tuning_bench.host.plugins import PluginHost, load_catalog, plugin_infos, reset_default_host

BUILTIN_METHODS = {"zero-shot", "few-shot", "hard-prompt", "prompt", "prefix", "ptuning", "lora", "ia3", "finetune"}


class Dummy(Method):
    name = "dummy"
    description = "a dummy method"
    options = (learning_rate(1e-3, "test"),)


def test_builtin_plugins_register_through_hooks():
    catalog = load_catalog()
    assert BUILTIN_METHODS <= set(catalog.methods.names())
    assert catalog.methods.owner("lora") == "builtin:lora"
    assert {"smollm2-135m", "minilm-l6"} <= set(catalog.models.names())
    assert isinstance(catalog.models.get("smollm2-135m"), ModelSource)
    assert all(isinstance(t, Task) for t in catalog.tasks)


def test_fake_plugin_method_is_registered_and_listed(fake_plugin, cli_runner):
    fake_plugin("fake-dist", register_methods=lambda register: register(Dummy()))
    catalog = load_catalog()
    assert catalog.methods.owner("dummy") == "fake-dist"
    result = run_tbench(cli_runner, "methods", "--json")
    rows = json.loads(result.stdout)
    assert {"name": "dummy"}.items() <= next(r for r in rows if r["name"] == "dummy").items()
    assert next(r for r in rows if r["name"] == "dummy")["plugin"] == "fake-dist"


def test_register_accepts_a_class_and_rejects_wrong_types(fake_plugin):
    fake_plugin("by-class", register_methods=lambda register: register(Dummy))
    assert load_catalog().methods.get("dummy").name == "dummy"
    fake_plugin("wrong", register_tasks=lambda register: register("not a task"))
    failure = next(f for f in load_catalog().failures if f.plugin == "wrong")
    assert "registered 'not a task' as a task; expected a tuning_bench.api.task.Task" in failure.message()


def test_duplicate_names_name_both_plugins(fake_plugin):
    class LoraAgain(Dummy):
        name = "lora"

    fake_plugin("tbench-other", register_methods=lambda register: register(LoraAgain()))
    with pytest.raises(PluginError) as info:
        load_catalog()
    assert "builtin:lora" in str(info.value) and "tbench-other" in str(info.value)
    assert "TBENCH_BLOCK_PLUGINS" in str(info.value)


def test_duplicate_is_one_line_exit_2_in_cli(fake_plugin, cli_runner):
    class LoraAgain(Dummy):
        name = "lora"

    fake_plugin("tbench-other", register_methods=lambda register: register(LoraAgain()))
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["methods"])
    assert result.exit_code == 2
    assert "registered by both" in result.output and "Traceback" not in result.output


def test_a_hook_that_raises_is_reported_and_others_still_register(fake_plugin):
    def broken(register):
        raise RuntimeError("boom")

    fake_plugin("broken-plugin", register_methods=broken)
    fake_plugin("good-plugin", register_methods=lambda register: register(Dummy()))
    catalog = load_catalog()
    assert "dummy" in catalog.methods and "lora" in catalog.methods
    failure = next(f for f in catalog.failures if f.plugin == "broken-plugin")
    assert "boom" in failure.message() and "register_methods" in failure.message()


def _fake_entry_points(monkeypatch, specs):
    """Make metadata.entry_points(group="tuning_bench") return the given (name, module) pairs."""
    points = [metadata.EntryPoint(name=name, value=module, group="tuning_bench") for name, module in specs]
    real = metadata.entry_points

    def entry_points(**kwargs):
        if kwargs.get("group") == "tuning_bench":
            return points
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", entry_points)


@pytest.fixture
def two_importable_plugins(monkeypatch):
    for name, method_name in (("plug_a", "method-a"), ("plug_b", "method-b")):
        module = types.ModuleType(name)
        cls = type(f"M{name}", (Dummy,), {"name": method_name})
        from tuning_bench import hookimpl

        module.register_methods = hookimpl(lambda register, cls=cls: register(cls()))
        monkeypatch.setitem(sys.modules, name, module)
    _fake_entry_points(monkeypatch, [("plug_a", "plug_a"), ("plug_b", "plug_b"), ("plug_missing", "no_such_module_xyz")])


def test_plugin_that_fails_to_import_is_named_and_others_load(two_importable_plugins, monkeypatch):
    monkeypatch.delenv("TBENCH_PLUGINS")
    reset_default_host()
    catalog = load_catalog()
    assert {"method-a", "method-b"} <= set(catalog.methods.names())
    failure = next(f for f in catalog.failures if f.plugin == "plug_missing")
    assert "No module named 'no_such_module_xyz'" in failure.error


def test_tbench_plugins_restricts_external_plugins(two_importable_plugins, monkeypatch):
    monkeypatch.setenv("TBENCH_PLUGINS", "plug_a")
    reset_default_host()
    names = set(load_catalog().methods.names())
    assert "method-a" in names and "method-b" not in names
    assert BUILTIN_METHODS <= names  # built-ins are not external plugins


def test_empty_tbench_plugins_loads_no_external_plugin(two_importable_plugins, monkeypatch):
    monkeypatch.setenv("TBENCH_PLUGINS", "")
    reset_default_host()
    names = set(load_catalog().methods.names())
    assert not {"method-a", "method-b"} & names


def test_tbench_block_plugins_blocks_external_and_builtin(two_importable_plugins, monkeypatch):
    monkeypatch.delenv("TBENCH_PLUGINS")
    monkeypatch.setenv("TBENCH_BLOCK_PLUGINS", "plug_b,builtin:ia3")
    reset_default_host()
    names = set(load_catalog().methods.names())
    assert "method-a" in names and "method-b" not in names and "ia3" not in names and "lora" in names


def test_plugin_infos_show_version_and_hooks():
    infos = {info["name"]: info for info in plugin_infos()}
    assert infos["builtin:lora"]["hooks"] == ["register_methods"]
    assert infos["builtin:lora"]["version"]
    assert infos["builtin:model_sources"]["hooks"] == ["register_models"]


def test_register_commands_hook_adds_a_cli_command(fake_plugin, cli_runner):
    import click

    def register_commands(cli):
        @cli.command(name="hello-plugin")
        def hello():
            click.echo("hello from a plugin")

    fake_plugin("cmd-plugin", register_commands=register_commands)
    from tuning_bench.cli.main import _add_plugin_commands, cli

    _add_plugin_commands()
    try:
        result = cli_runner.invoke(cli, ["hello-plugin"])
        assert result.exit_code == 0 and "hello from a plugin" in result.output
    finally:
        cli.commands.pop("hello-plugin", None)


@pytest.mark.parametrize("command", ["methods", "tasks", "models", "plugins"])
def test_json_listings_are_lists_of_named_objects(cli_runner, command):
    result = run_tbench(cli_runner, command, "--json")
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    assert all(isinstance(row, dict) and isinstance(row["name"], str) for row in rows)
    if command == "plugins":
        assert all("version" in row and isinstance(row["hooks"], list) for row in rows)
    if command == "methods":
        lora = next(r for r in rows if r["name"] == "lora")
        assert {o["name"] for o in lora["options"]} >= {"r", "alpha", "learning_rate"}
        assert all(o["source"] for o in lora["options"])


@pytest.mark.parametrize("command", ["methods", "tasks", "models", "plugins"])
def test_listings_print_tables(cli_runner, command):
    result = run_tbench(cli_runner, command)
    assert result.exit_code == 0 and "┃ name" in result.output


def test_the_methods_listing_reads_at_80_columns_and_shows_every_column_when_wide(cli_runner, monkeypatch):
    from tuning_bench.cli import main
    from tuning_bench.host.plugins import load_catalog

    names = [m.name for m in load_catalog().methods]
    monkeypatch.setattr(main.stdout, "_width", 80)
    narrow = run_tbench(cli_runner, "methods").output
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "┃ plugin" not in narrow and "a terminal of 120 columns" in narrow
    # every method's name whole on one line (not folded), the default run's marked
    assert all(f"│ {name} " in narrow for name in names) and "│ lora * " in narrow
    monkeypatch.setattr(main.stdout, "_width", 160)
    wide = run_tbench(cli_runner, "methods").output
    assert "┃ plugin" in wide and "┃ options" in wide and "builtin:lora" in wide


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--methods", "promt,lora"], "Unknown method 'promt'. Did you mean: prompt"),
        (["run", "--tasks", "product-descriptons"], "Did you mean: product-descriptions?"),
        (["run", "--model", "smollm-135m"], "Did you mean: smollm2-135m?"),
        (["run", "--set", "lora.alpa=4"], "Unknown option 'alpa' of method 'lora'. Did you mean: alpha?"),
    ],
)
def test_unknown_names_are_one_line_with_suggestion_and_exit_2(cli_runner, args, expected, tmp_path):
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, args + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_usage_error_type_is_exit_code_2():
    assert UsageError.exit_code == 2


# --- the host as an object, hook names, import failures (issue 12 item 6, issue 14 item 8) ---------------


def test_each_host_has_its_own_plugins():
    first, second = PluginHost(), PluginHost()
    module = types.ModuleType("only-in-first")
    from tuning_bench import hookimpl

    module.register_methods = hookimpl(lambda register: register(Dummy()))
    assert first.add_plugin(module, "only-in-first")
    assert "dummy" in first.catalog().methods and "dummy" not in second.catalog().methods


def test_a_misspelt_hook_is_reported_naming_the_plugin_and_others_load(fake_plugin):
    fake_plugin("typo-plugin", register_method=lambda register: register(Dummy()))
    fake_plugin("good-plugin", register_methods=lambda register: register(type("Good", (Dummy,), {"name": "good"})()))
    catalog = load_catalog()
    failure = next(f for f in catalog.failures if f.plugin == "typo-plugin")
    assert "hook 'register_method' is not a tuning_bench hook. Did you mean register_methods?" in failure.message()
    assert "good" in catalog.methods and "dummy" not in catalog.methods


def _plugin_module(tmp_path, monkeypatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TBENCH_PLUGIN_MODULES", name)
    reset_default_host()


@pytest.mark.parametrize(("source", "error"), [
    ("raise RuntimeError('boom at import')", "RuntimeError: boom at import"),
    ("def broken(:\n", "SyntaxError"),
    ("import sys\nsys.exit(3)", "SystemExit: 3"),
])
def test_a_plugin_module_raising_at_import_is_reported_and_commands_still_work(
        tmp_path, monkeypatch, cli_runner, source, error):
    _plugin_module(tmp_path, monkeypatch, "tbench_broken_at_import", source)
    result = cli_runner.invoke(__import__("tuning_bench.cli.main", fromlist=["cli"]).cli, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    assert BUILTIN_METHODS <= {row["name"] for row in json.loads(result.stdout)}
    assert "plugin 'tbench_broken_at_import' failed to import" in result.stderr and error in result.stderr
    assert "tbench_broken_at_import" not in load_catalog().methods.names() and not reset_default_host().modules()


def test_duplicate_from_a_module_plugin_suggests_a_fix_that_works(tmp_path, monkeypatch):
    _plugin_module(tmp_path, monkeypatch, "tbench_lora_again", (
        "from tuning_bench import Method, hookimpl\nfrom tuning_bench.api.method import learning_rate\n"
        "class L(Method):\n    name = 'lora'\n    options = (learning_rate(1e-3, 'x'),)\n"
        "@hookimpl\ndef register_methods(register):\n    register(L())\n"))
    with pytest.raises(PluginError) as info:
        load_catalog()
    message = str(info.value)
    assert "TBENCH_BLOCK_PLUGINS=tbench_lora_again" in message and "TBENCH_PLUGIN_MODULES" in message
    monkeypatch.setenv("TBENCH_BLOCK_PLUGINS", "tbench_lora_again")  # following the suggestion resolves it
    catalog = reset_default_host().catalog()
    assert catalog.methods.owner("lora") == "builtin:lora" and "tbench_lora_again" not in reset_default_host().modules()


def test_a_trainable_method_without_learning_rate_is_rejected_naming_the_plugin(fake_plugin):
    class NoRate(Method):
        name = "no-rate"
        description = "trains, but declares no learning rate"

    fake_plugin("tbench-norate", register_methods=lambda register: (register(NoRate()), register(Dummy())))
    catalog = load_catalog()
    failure = next(f for f in catalog.failures if f.plugin == "tbench-norate")
    assert "method 'no-rate' trains but has no learning_rate option" in failure.message()
    assert "no-rate" not in catalog.methods and "dummy" in catalog.methods  # its other method still registers


def test_a_method_with_an_unknown_decoding_is_rejected_naming_the_choices(fake_plugin):
    class Beam(Method):
        name = "beam"
        description = "asks for a decoding the engine does not have"
        trains = False
        decoding = "beam-search"

    fake_plugin("tbench-beam", register_methods=lambda register: register(Beam()))
    failure = next(f for f in load_catalog().failures if f.plugin == "tbench-beam")
    assert "decoding = 'beam-search'; use one of generate, engine, unpadded, soft-prompt" in failure.message()


# --- registered metrics ------------------------------------------------------------------------------------


def test_registered_metrics_score_through_compute_metrics(tiny):
    from tuning_bench.metrics import compute_metrics

    catalog = load_catalog()
    assert catalog.metrics.owner("fake_length_ratio") == "fake_plugins"
    assert catalog.metrics.get("fake_length_ratio").higher_is_better is False
    scores = compute_metrics(["fake_length_ratio", "fake_corpus_count", "accuracy"], ["a b", "a"], ["a b", "a b"])
    assert scores == {"fake_length_ratio": 0.75, "fake_corpus_count": 2.0, "accuracy": 0.5}


@pytest.mark.parametrize(("args", "problem"), [
    (("accuracy", lambda p, r: 1.0), "metric 'accuracy' is a shipped metric"),
    (("one-arg", lambda p: 1.0), "must take two arguments (prediction, reference)"),
    (("bad name!", lambda p, r: 1.0), "metric name 'bad name!' is not usable"),
])
def test_a_bad_metric_registration_is_rejected_naming_the_plugin(fake_plugin, args, problem):
    fake_plugin("tbench-badmetric", register_metrics=lambda register: register(*args))
    failure = next(f for f in load_catalog().failures if f.plugin == "tbench-badmetric")
    assert problem in failure.message()


def test_a_metric_returning_a_non_number_fails_with_its_name(fake_plugin):
    from tuning_bench.metrics import compute_metrics

    fake_plugin("tbench-textmetric", register_metrics=lambda register: register("wordy", lambda p, r: "high"))
    with pytest.raises(ValueError, match="metric 'wordy' of plugin 'tbench-textmetric' returned 'high'"):
        compute_metrics(["wordy"], ["a"], ["a"])


# --- Python tasks get the task-file checks -------------------------------------------------------------------


def _task(**changes):
    from tuning_bench.api.kinds import TaskKind

    fields = dict(name="py-task", description="d", kind=TaskKind.CLASSIFICATION, instruction="Classify.",
                  input_template="{text}", target_template="{label}", metrics=("accuracy",), headline="accuracy",
                  labels=("neg", "pos"),
                  load_splits=lambda: {split: [{"text": "t", "label": "pos"}] for split in ("train", "validation", "test")})
    fields.update(changes)
    return Task(**fields)


@pytest.mark.parametrize(("changes", "problem"), [
    ({"metrics": ("acuracy",), "headline": "acuracy"}, "unknown metric 'acuracy'; did you mean accuracy?"),
    ({"metrics": ("fake_lenght_ratio",), "headline": "fake_lenght_ratio"}, "did you mean fake_length_ratio?"),
    ({"labels": ()}, "key 'labels': required for a classification task"),
    ({"input_template": "{text!r:>{w}"}, "key 'input_template': not a valid template"),
    ({"headline": "macro_f1"}, "'macro_f1' is not one of the metrics"),
    ({"name": "bad name"}, "'bad name' is not a usable task name"),
])
def test_a_broken_python_task_is_rejected_naming_the_plugin(tiny, fake_plugin, changes, problem):
    fake_plugin("tbench-pytask", register_tasks=lambda register: register(_task(**changes)))
    catalog = load_catalog()
    failure = next(f for f in catalog.failures if f.plugin == "tbench-pytask")
    assert problem in failure.message() and len(failure.message().splitlines()) == 1


def test_a_python_task_may_name_a_registered_metric(tiny, fake_plugin):
    fake_plugin("tbench-pytask", register_tasks=lambda register: register(
        _task(metrics=("fake_length_ratio",), headline="fake_length_ratio")))
    catalog = load_catalog()
    assert "py-task" in catalog.tasks and not [f for f in catalog.failures if f.plugin == "tbench-pytask"]


def test_a_python_task_with_bad_examples_fails_before_anything_runs(fake_plugin, cli_runner, tmp_path):
    from tuning_bench.cli.main import cli

    bad = lambda: {"train": [{"text": "t", "label": "pos"}], "validation": [], "test": [{"text": "t", "label": "maybe"}]}
    fake_plugin("tbench-pytask", register_tasks=lambda register: register(_task(load_splits=bad)))
    result = cli_runner.invoke(cli, ["run", "--tasks", "py-task", "--methods", "zero-shot", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "plugin 'tbench-pytask', task 'py-task': key 'labels': test example 0 has label 'maybe'" in result.output
    assert not (tmp_path / "o").exists()


def test_a_task_file_may_name_a_registered_metric(tiny, tmp_path):
    from tuning_bench.host.lookup import resolve_task

    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(10)))
    (tmp_path / "t.yaml").write_text("name: t\nkind: generation\ninstruction: Answer.\ndata: rows.jsonl\n"
                                    "input_template: '{q}'\ntarget_template: '{a}'\nmetrics: [fake_length_ratio]\n")
    task = resolve_task(load_catalog(), str(tmp_path / "t.yaml"))
    assert task.metrics == ("fake_length_ratio",) and task.higher_is_better is False
    (tmp_path / "t.yaml").write_text((tmp_path / "t.yaml").read_text().replace("fake_length_ratio", "fake-length-ratio"))
    with pytest.raises(UsageError, match="unknown metric 'fake-length-ratio'; did you mean fake_length_ratio"):
        resolve_task(load_catalog(), str(tmp_path / "t.yaml"))


def test_an_unknown_metric_name_fails_when_the_task_is_resolved(tiny, fake_plugin, cli_runner, tmp_path):
    from tuning_bench.cli.main import cli

    # a name the checks take for a hub metric: loaded (offline: refused) before anything runs
    fake_plugin("tbench-pytask", register_tasks=lambda register: register(
        _task(metrics=("length_ratio",), headline="length_ratio")))
    result = cli_runner.invoke(cli, ["run", "--tasks", "py-task", "--methods", "zero-shot", "--model", "tiny-llama",
                                     "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "Metric 'length_ratio' could not be loaded" in result.output
    assert "Did you mean: fake_length_ratio?" in result.output and not (tmp_path / "o").exists()
