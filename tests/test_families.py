"""Method families and the default set: `tbench methods` groups like with like, each cell records its
method's family, reports group rows by it, and `tbench run` without --methods keeps its eight methods."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from conftest import run_tbench
from tuning_bench.api.method import FAMILIES, Method
from tuning_bench.host.plugins import load_catalog
from tuning_bench.report import render_html, render_markdown, terminal_tables
from tuning_bench.run.results import validate

DATA = Path(__file__).parent / "data"

EXPECTED_FAMILIES = {
    "zero-shot": "no weight change", "few-shot": "no weight change",
    "prompt": "soft prompt", "prefix": "soft prompt", "ptuning": "soft prompt",
    "lora": "adapter", "ia3": "adapter", "dora": "adapter", "rslora": "adapter", "pissa": "adapter",
    "adalora": "adapter", "lora-plus": "adapter", "vera": "adapter", "loha": "adapter", "lokr": "adapter",
    "oft": "adapter",
    "bitfit": "selective", "ln-tuning": "selective",
    "finetune": "full", "hard-prompt": "no weight change", "peft": "other",
}
# `tbench run` without --methods: exactly the set it ran before the variants existed, in that order.
DEFAULT_RUN = ["zero-shot", "few-shot", "prompt", "prefix", "ptuning", "lora", "ia3", "finetune"]


def test_every_built_in_method_declares_its_family():
    catalog = load_catalog()
    assert {name: catalog.methods.get(name).family for name in EXPECTED_FAMILIES} == EXPECTED_FAMILIES


def test_methods_lists_families_grouped_and_every_variant_with_sourced_defaults(cli_runner):
    rows = json.loads(run_tbench(cli_runner, "methods", "--json").stdout)
    names = [r["name"] for r in rows]
    assert set(EXPECTED_FAMILIES) <= set(names)
    ranks = [FAMILIES.index(r["family"]) for r in rows]
    assert ranks == sorted(ranks), "rows are grouped by family, in FAMILIES order"
    assert [r["name"] for r in rows if r["in_default_run"]] == DEFAULT_RUN
    for row in rows:
        if row["name"] in EXPECTED_FAMILIES:
            assert row["family"] == EXPECTED_FAMILIES[row["name"]]
            assert all(option["source"] for option in row["options"]), row["name"]  # every default says its source
    table = run_tbench(cli_runner, "methods").stdout
    positions = [table.index(name) for name in ("zero-shot", "prompt", "dora", "bitfit", "finetune")]
    assert positions == sorted(positions)


def test_the_default_run_keeps_its_eight_methods(tmp_path):
    from tuning_bench.run.runner import plan_run
    from tuning_bench.run.settings import RunSettings

    catalog = load_catalog(["tuning_bench.testing"])  # the tiny model and task; no test methods
    plan = plan_run(RunSettings(tasks=["tiny-gen"], model="tiny-llama", out=str(tmp_path)), catalog)
    assert list(plan.method_configs) == DEFAULT_RUN
    assert "dora" in load_catalog().methods  # registered, but only run when named


def test_setting_an_option_of_a_method_outside_the_default_set_brings_it_into_the_run(tmp_path):
    from tuning_bench.run.runner import plan_run
    from tuning_bench.run.settings import RunSettings

    catalog = load_catalog()
    plan = plan_run(RunSettings(tasks=["tiny-gen"], model="tiny-llama", out=str(tmp_path),
                                options={"dora": {"r": 4}}), load_catalog(["tuning_bench.testing"]))
    assert list(plan.method_configs) == [*DEFAULT_RUN, "dora"] and plan.method_configs["dora"]["r"] == 4
    assert "dora" in catalog.methods


def test_a_method_with_an_unknown_family_is_rejected_naming_the_choices(fake_plugin):
    class Odd(Method):
        name = "odd"
        description = "declares a family tbench does not know"
        trains = False
        family = "adapters"

    fake_plugin("tbench-odd", register_methods=lambda register: register(Odd()))
    failure = next(f for f in load_catalog().failures if f.plugin == "tbench-odd")
    assert "family = 'adapters'; use one of 'no weight change', 'soft prompt', 'adapter'" in failure.message()


def _with_families(families: dict[str, str]) -> dict:
    """The generation fixture with distinct headlines (method order = score order) and families recorded."""
    data = validate(json.loads((DATA / "gen-results.json").read_text(encoding="utf-8")), "gen-results.json")
    data = copy.deepcopy(data)
    methods = data["run"]["methods"]
    for cell in data["cells"]:
        cell["family"] = families.get(cell["method"])
        if cell["status"] == "ok":
            value = 0.9 - 0.1 * methods.index(cell["method"])  # the first listed method scores best
            cell["headline"]["value"] = value
            cell["quality"][cell["headline"]["metric"]] = value
    return data


def _main_rows(markdown: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Family | Method | n |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_reports_group_rows_by_family_then_by_the_headline():
    plain = validate(json.loads((DATA / "gen-results.json").read_text(encoding="utf-8")), "gen-results.json")
    methods = plain["run"]["methods"]
    # the best-scoring method is put in the last family: grouping, not the score, must order it
    families = {m: FAMILIES[-1] if i == 0 else EXPECTED_FAMILIES.get(m, "adapter") for i, m in enumerate(methods)}
    markdown = render_markdown(_with_families(families))
    rows = _main_rows(markdown)
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), key=FAMILIES.index)
    assert rows[-1][1] == methods[0] and rows[-1][0] == FAMILIES[-1]
    for family in {r[0] for r in rows}:  # within a family: best first
        scores = [float(r[3].strip("*").split(" ± ")[0]) for r in rows if r[0] == family]
        assert scores == sorted(scores, reverse=True)
    assert "Rows are grouped by method family" in markdown
    assert "<th>Family</th>" in render_html(_with_families(families))
    # records written before families: no Family column, rows by the headline alone, as before
    plain_markdown = render_markdown(plain)
    assert "| Family |" not in plain_markdown and "Rows are sorted by it, best first." in plain_markdown


def test_terminal_summary_puts_a_title_line_over_each_family():
    from rich.console import Console

    data = _with_families(EXPECTED_FAMILIES)
    console = Console(record=True, width=80, color_system=None, file=open("/dev/null", "w"))
    for table in terminal_tables(data):
        console.print(table)
    text = console.export_text()
    present = [f for f in FAMILIES if f in {EXPECTED_FAMILIES.get(m) for m in data["run"]["methods"]}]
    positions = [text.index(family) for family in present]
    assert len(present) >= 2 and positions == sorted(positions)
    assert max(len(line) for line in text.splitlines()) <= 80
