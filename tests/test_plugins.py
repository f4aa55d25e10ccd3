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
from tuning_bench.host.plugins import build_catalog, get_plugin_manager, plugin_infos, reset_plugin_manager

BUILTIN_METHODS = {"zero-shot", "few-shot", "prompt", "prefix", "ptuning", "lora", "ia3", "finetune"}


class Dummy(Method):
    name = "dummy"
    description = "a dummy method"
    options = (learning_rate(1e-3, "test"),)


def test_builtin_plugins_register_through_hooks():
    catalog = build_catalog()
    assert BUILTIN_METHODS <= set(catalog.methods.names())
    assert catalog.methods.owner("lora") == "builtin:lora"
    assert {"smollm2-135m", "minilm-l6"} <= set(catalog.models.names())
    assert isinstance(catalog.models.get("smollm2-135m"), ModelSource)
    assert all(isinstance(t, Task) for t in catalog.tasks)


def test_fake_plugin_method_is_registered_and_listed(fake_plugin, cli_runner):
    fake_plugin("fake-dist", register_methods=lambda register: register(Dummy()))
    catalog = build_catalog()
    assert catalog.methods.owner("dummy") == "fake-dist"
    result = run_tbench(cli_runner, "methods", "--json")
    rows = json.loads(result.stdout)
    assert {"name": "dummy"}.items() <= next(r for r in rows if r["name"] == "dummy").items()
    assert next(r for r in rows if r["name"] == "dummy")["plugin"] == "fake-dist"


def test_register_accepts_a_class_and_rejects_wrong_types(fake_plugin):
    fake_plugin("by-class", register_methods=lambda register: register(Dummy))
    assert build_catalog().methods.get("dummy").name == "dummy"
    fake_plugin("wrong", register_tasks=lambda register: register("not a task"))
    with pytest.raises(PluginError, match="plugin 'wrong' registered 'not a task' as a task"):
        build_catalog()


def test_duplicate_names_name_both_plugins(fake_plugin):
    class LoraAgain(Dummy):
        name = "lora"

    fake_plugin("tbench-other", register_methods=lambda register: register(LoraAgain()))
    with pytest.raises(PluginError) as info:
        build_catalog()
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
    catalog = build_catalog()
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
    reset_plugin_manager()
    catalog = build_catalog()
    assert {"method-a", "method-b"} <= set(catalog.methods.names())
    failure = next(f for f in catalog.failures if f.plugin == "plug_missing")
    assert "No module named 'no_such_module_xyz'" in failure.error


def test_tbench_plugins_restricts_external_plugins(two_importable_plugins, monkeypatch):
    monkeypatch.setenv("TBENCH_PLUGINS", "plug_a")
    reset_plugin_manager()
    names = set(build_catalog().methods.names())
    assert "method-a" in names and "method-b" not in names
    assert BUILTIN_METHODS <= names  # built-ins are not external plugins


def test_empty_tbench_plugins_loads_no_external_plugin(two_importable_plugins, monkeypatch):
    monkeypatch.setenv("TBENCH_PLUGINS", "")
    reset_plugin_manager()
    names = set(build_catalog().methods.names())
    assert not {"method-a", "method-b"} & names


def test_tbench_block_plugins_blocks_external_and_builtin(two_importable_plugins, monkeypatch):
    monkeypatch.delenv("TBENCH_PLUGINS")
    monkeypatch.setenv("TBENCH_BLOCK_PLUGINS", "plug_b,builtin:ia3")
    reset_plugin_manager()
    names = set(build_catalog().methods.names())
    assert "method-a" in names and "method-b" not in names and "ia3" not in names and "lora" in names


def test_plugin_infos_show_version_and_hooks():
    infos = {info["name"]: info for info in plugin_infos(get_plugin_manager())}
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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--methods", "promt,lora"], "Unknown method 'promt'. Did you mean: prompt?"),
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
