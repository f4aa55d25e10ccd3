"""The one settings table: what it derives (CLI, suite checks, CellSpec defaults, cache key) and its checks."""

from __future__ import annotations

import math
import re
from dataclasses import fields

import pytest
from conftest import REPO
from hypothesis import given, settings as hsettings, strategies as st

from tuning_bench.api.errors import UsageError
from tuning_bench.api.options import Option, resolve_options
from tuning_bench.engine.cell import CellSpec
from tuning_bench.run.settings import MAX_SEED, SETTINGS, RunSettings, check_value, outside_cache_key


def _run_command():
    from tuning_bench.cli.main import cli

    return cli.commands["run"]


def test_every_setting_is_a_run_settings_field_with_its_default():
    run = RunSettings()
    assert [f.name for f in fields(RunSettings)] == [s.name for s in SETTINGS]
    for setting in SETTINGS:
        assert getattr(run, setting.name) == setting.default
    RunSettings().tasks.append("x")  # defaults are copies, not shared lists
    assert RunSettings().tasks == ["product-descriptions"]


def test_cell_spec_defaults_come_from_the_settings_table():
    spec_fields = {f.name: f for f in fields(CellSpec)}
    spec = CellSpec(task="t", method="m", seed=0, model="x", method_config={}, steps=1)
    for setting in SETTINGS:
        if not setting.per_cell:
            assert setting.name not in spec_fields, setting.name
            continue
        assert setting.name in spec_fields, setting.name
        if setting.name not in ("model", "steps"):
            assert getattr(spec, setting.name) == setting.cell_default, setting.name


def test_every_flag_of_run_comes_from_one_setting_or_is_a_run_action():
    flags = {opt for param in _run_command().params for opt in param.opts}
    from_settings = {s.cli_flag for s in SETTINGS if s.cli_flag}
    assert flags == from_settings | {"--config", "--set", "--quick", "--force", "--out-overwrite"}


def test_readme_option_table_matches_the_run_command():
    readme = (REPO / "README.md").read_text()
    table = readme.split("`tbench run` options", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `(--[a-z-]+)", table, flags=re.M))
    flags = {opt for param in _run_command().params for opt in param.opts if opt.startswith("--")}
    assert documented == flags


def test_readme_option_table_gives_each_numeric_default_as_the_settings_table_does():
    readme = (REPO / "README.md").read_text()
    table = readme.split("`tbench run` options", 1)[1].split("\n\n", 2)[1]
    rows = dict(re.findall(r"^\| `(--[a-z-]+)[^|]*\| ([^|]+) \|", table, flags=re.M))
    numeric = [s for s in SETTINGS if s.cli_flag in rows and s.kind in ("int", "float") and not s.default_text]
    assert {"--steps", "--eval-examples", "--batch-size"} <= {s.cli_flag for s in numeric}
    for setting in numeric:
        assert float(rows[setting.cli_flag].split()[0]) == setting.default, setting.cli_flag


def test_cache_key_leaves_out_only_what_does_not_change_results():
    from tuning_bench.run.cellcache import cell_key as _cell_key

    base = CellSpec(task="t", method="m", seed=0, model="x", method_config={}, steps=1)
    key = _cell_key(base, "task", "model")
    for name, value in [("keep", "all"), ("samples", 1), ("plugin_modules", ["p"])]:
        assert _cell_key(CellSpec(**(base.to_dict() | {name: value})), "task", "model") == key, name
    for name, value in [("batch_size", 2), ("max_length", 64), ("seed", 1), ("latency", False), ("trial", "x")]:
        assert _cell_key(CellSpec(**(base.to_dict() | {name: value})), "task", "model") != key, name
    assert outside_cache_key() == {"keep", "samples", "out", "executor", "quick", "devices", "jobs",  # quick marks the run, not a cell
                                   "cell_gpus", "cell_cpus", "ray_address", "retries", "log_to", "cell_process"}


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(), st.booleans()))
@hsettings(max_examples=200, deadline=None)
def test_integer_settings_accept_only_integers_in_range(value):
    for setting in (s for s in SETTINGS if s.kind == "int"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= setting.minimum
        if ok:
            assert check_value(setting.name, value, "x") == value
        else:
            with pytest.raises(UsageError, match=f"x: {setting.name} must be"):
                check_value(setting.name, value, "x")


@given(st.lists(st.integers(min_value=-5, max_value=2**40), min_size=1, max_size=5))
@hsettings(max_examples=200, deadline=None)
def test_seeds_are_distinct_and_in_numpy_range(seeds):
    valid = all(0 <= s <= MAX_SEED for s in seeds) and len(set(seeds)) == len(seeds)
    if valid:
        assert check_value("seeds", seeds, "x") == seeds
        assert check_value("seeds", ",".join(map(str, seeds)), "--seeds") == seeds
    else:
        with pytest.raises(UsageError):
            check_value("seeds", seeds, "x")


@given(st.text())
@hsettings(max_examples=200, deadline=None)
def test_seed_text_never_escapes_as_anything_but_a_usage_error(text):
    try:
        seeds = check_value("seeds", text, "--seeds")
    except UsageError:
        return
    assert seeds and all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in seeds)


FLOAT_OPTION = Option("dropout", float, 0.1, "Dropout.", minimum=0.0, maximum=0.9)
INT_OPTION = Option("r", int, 8, "Rank.", minimum=1, maximum=1024)


@given(st.floats(allow_nan=True, allow_infinity=True))
@hsettings(max_examples=300, deadline=None)
def test_float_options_accept_only_finite_values_in_range(value):
    for raw in (value, repr(value)):  # from a suite file, and as --set text
        accepted = math.isfinite(value) and 0.0 <= value <= 0.9
        if accepted:
            assert resolve_options("m", [FLOAT_OPTION], {"dropout": raw})["dropout"] == value
        else:
            with pytest.raises(UsageError, match=r"^--set: m\.dropout "):
                resolve_options("m", [FLOAT_OPTION], {"dropout": raw})


@given(st.one_of(st.integers(), st.text(max_size=30)))
@hsettings(max_examples=300, deadline=None)
def test_int_options_take_big_integers_and_odd_text_as_one_usage_error(raw):
    try:
        value = resolve_options("m", [INT_OPTION, FLOAT_OPTION], {"r": raw})["r"]
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(value, int) and 1 <= value <= 1024


def test_float_text_too_big_for_a_float_is_a_usage_error():
    with pytest.raises(UsageError, match="must be a finite number"):
        resolve_options("m", [FLOAT_OPTION], {"dropout": "1e999"})
    with pytest.raises(UsageError, match="must be a finite number"):
        resolve_options("m", [FLOAT_OPTION], {"dropout": 10**400})  # an integer from a suite file
