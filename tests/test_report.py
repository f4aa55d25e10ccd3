"""Reports from results.json: files, byte-identical regeneration, self-contained HTML, numbers, marks, compare.

The fixtures in tests/data are trimmed copies of real records the engine wrote for the tiny random
test model: gen-results.json (generation, 8 methods x 2 seeds) and cls-sweep-results.json
(classification with a learning-rate sweep, 4 of its methods kept). Per-cell predictions, configs
and environments were dropped and samples cut to three; both still pass results.validate.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import statistics
from pathlib import Path

import pytest
from rich.console import Console

from tuning_bench.report import compare_runs, render_html, render_markdown, terminal_tables, write_reports
from tuning_bench.report.compare import unmatched_cells
from tuning_bench.report.html import SORT_SCRIPT
from tuning_bench.report.plots import CAPTIONS, memory_plot, params_plot
from tuning_bench.report.tables import COST_COLUMNS, best_methods, build_tasks, format_bytes, pareto_front
from tuning_bench.run.results import selected_cells, validate

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict:
    return validate(json.loads((DATA / name).read_text(encoding="utf-8")), name)


def vary_headlines(data: dict) -> dict:
    """Give every cell a distinct headline so that means, stds, order and sweep selection are visible.

    The tiny model scores the same on every cell; values here depend on method, seed and trial.
    """
    methods = data["run"]["methods"]
    for index, cell in enumerate(data["cells"]):
        if cell["status"] != "ok":
            continue
        value = 0.1 * methods.index(cell["method"]) + 0.05 * cell["seed"] + 0.001 * (index % 7)
        cell["headline"]["value"] = value
        cell["quality"][cell["headline"]["metric"]] = value
    return data


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The body rows of the first Markdown table whose header starts with ``header_start``, split into cells."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def without_sort_script(page: str) -> str:
    """The page less its one inline script, the constant SORT_SCRIPT (which holds no record data)."""
    assert page.count("<script") == 1 and page.count(f"<script>{SORT_SCRIPT}</script>") == 1
    return page.replace(f"<script>{SORT_SCRIPT}</script>", "")


def text_of(tables) -> str:
    console = Console(record=True, width=250, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Each fixture's reports written twice, into two directories: (first, second) per fixture name."""
    out = {}
    for name in ("gen-results.json", "cls-sweep-results.json"):
        data = load(name)
        first = tmp_path_factory.mktemp("first")
        second = tmp_path_factory.mktemp("second")
        out[name] = (first, write_reports(first, data), second, write_reports(second, copy.deepcopy(data)))
    return out


def test_write_reports_creates_markdown_html_and_pngs(written):
    first, paths, _, _ = written["gen-results.json"]
    names = sorted(p.relative_to(first).as_posix() for p in paths)
    assert names == ["plots/smoke-gen-gain-vs-retention.png", "plots/smoke-gen-loss.png",
                     "plots/smoke-gen-quality-vs-memory.png", "plots/smoke-gen-quality-vs-params.png", "report.html",
                     "report.md"]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    for png in (first / "plots").iterdir():
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(first.rglob("*.tmp")), "temporary files of the atomic writes must be gone"
    markdown = (first / "report.md").read_text(encoding="utf-8")
    for png in (first / "plots").iterdir():
        assert f"](plots/{png.name})" in markdown


@pytest.mark.parametrize("name", ["gen-results.json", "cls-sweep-results.json"])
def test_regenerating_gives_identical_bytes(written, name):
    first, paths, second, second_paths = written[name]
    assert [p.relative_to(first) for p in paths] == [p.relative_to(second) for p in second_paths]
    for path in paths:
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path.name


def test_html_is_self_contained(written):
    first, _, _, _ = written["cls-sweep-results.json"]
    page = (first / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert 'src="/' not in page and "<link" not in page and "@import" not in page
    assert "<script" not in without_sort_script(page)  # the sorting script is inline: no src, no URL
    assert "http" not in SORT_SCRIPT and "fetch" not in SORT_SCRIPT and "innerHTML" not in SORT_SCRIPT
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(CAPTIONS)  # one task: each of its plots once
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    # The embedded images are the very PNG files written beside the page.
    embedded = sorted(base64.b64decode(s.split(",", 1)[1]) for s in sources)
    assert embedded == sorted(p.read_bytes() for p in (first / "plots").iterdir())


def test_markdown_row_per_method_with_mean_and_std_over_seeds():
    data = vary_headlines(load("gen-results.json"))
    rows = table_rows(render_markdown(data), "| Method | n |")
    assert sorted(r[0] for r in rows) == sorted(data["run"]["methods"])
    for row in rows:
        values = [c["headline"]["value"] for c in data["cells"] if c["method"] == row[0]]
        assert len(values) == 2
        expected = f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"
        assert row[2].strip("*") == expected, row
        assert row[1] == "2/2"
    means = [float(r[2].strip("*").split(" ± ")[0]) for r in rows]
    assert means == sorted(means, reverse=True), "rows are sorted by headline, best first"


def test_other_quality_metrics_are_shown_as_means():
    data = load("gen-results.json")
    for index, cell in enumerate(data["cells"]):
        cell["quality"]["chrf"] = 10.0 + index
    markdown = render_markdown(data)
    header = next(line for line in markdown.splitlines() if line.startswith("| Method | n |"))
    assert header.split(" | ")[3] == "chrf"
    rows = {r[0]: r for r in table_rows(markdown, "| Method | n |")}
    for method, row in rows.items():
        values = [c["quality"]["chrf"] for c in data["cells"] if c["method"] == method]
        assert row[3] == f"{statistics.fmean(values):.3f}"


def test_rows_sort_the_other_way_when_lower_is_better():
    data = vary_headlines(load("gen-results.json"))
    data["tasks"]["smoke-gen"]["higher_is_better"] = False
    rows = table_rows(render_markdown(data), "| Method | n |")
    assert rows[0][0] == "zero-shot" and rows[0][2].startswith("**")
    assert rows[-1][0] == "finetune" and not rows[-1][2].startswith("**")


def test_best_value_marked_per_column():
    data = vary_headlines(load("gen-results.json"))
    for cell in data["cells"]:
        if cell["method"] == "prefix":
            cell["measurements"]["latency_seconds"] = 0.0005  # clearly the fastest
    view = build_tasks(data)[0]
    latency = next(c for c in COST_COLUMNS if c.key == "latency_seconds")
    params = next(c for c in COST_COLUMNS if c.key == "trainable_params")
    tokens = next(c for c in COST_COLUMNS if c.key == "tokens_per_second")
    assert best_methods(view.rows, view.columns[0]) == {"finetune"}  # highest headline
    assert best_methods(view.rows, latency) == {"prefix"}
    # Baselines train nothing; the fewest trainable parameters among methods that train is ia3's 192.
    assert best_methods(view.rows, params) == {"ia3"}
    fastest = max((r for r in view.rows if r.values["tokens_per_second"]), key=lambda r: r.values["tokens_per_second"])
    assert best_methods(view.rows, tokens) == {fastest.method}

    rows = {r[0]: r for r in table_rows(render_markdown(data), "| Method | n |")}
    latency_index = 3 + [c.key for c in COST_COLUMNS].index("latency_seconds")
    assert [m for m, r in rows.items() if r[latency_index].startswith("**")] == ["prefix"]
    assert rows["finetune"][2].startswith("**") and not rows["lora"][2].startswith("**")
    page = render_html(data, plots={})  # text only: skip drawing
    prefix_row = re.search(r"<tr><td>prefix</td>.*?</tr>", page).group(0)
    assert prefix_row.count('class="num best"') >= 1 and ">0.5 ms</td>" in prefix_row
    assert '<td class="num best" data-v="0.0005">0.5 ms</td>' in prefix_row


def test_equal_values_get_no_best_mark():
    view = build_tasks(load("gen-results.json"))[0]  # every method scores rouge_l 0.0
    assert best_methods(view.rows, view.columns[0]) == set()


def test_pareto_front_on_a_hand_made_case():
    points = [(1, 0.5), (2, 0.7), (3, 0.6), (4, 0.9), (2, 0.4), (0, 0.1)]
    assert pareto_front(points, higher_is_better=True) == [5, 0, 1, 3]
    # Lower quality is better: nothing beats (0, 0.1); then a case with a real trade-off.
    assert pareto_front(points, higher_is_better=False) == [5]
    losses = [(1, 3.0), (2, 2.0), (3, 2.5), (4, 1.0), (4, 1.5)]
    assert pareto_front(losses, higher_is_better=False) == [0, 1, 3]
    # Identical points do not knock each other out.
    assert pareto_front([(1, 0.5), (1, 0.5), (2, 0.4)]) == [0, 1]


def test_params_plot_shows_zero_parameter_baselines_at_a_floor():
    data = vary_headlines(load("gen-results.json"))
    view = build_tasks(data)[0]
    axes = params_plot(view, {}).axes[0]
    xs = [float(o[0]) for c in axes.collections for o in c.get_offsets()]
    assert len(xs) == len(view.rows) == 8
    smallest = min(r.values["trainable_params"] for r in view.rows if r.values["trainable_params"])
    assert xs.count(smallest / 10) == 2  # zero-shot and few-shot, one decade below ia3
    assert axes.get_xscale() == "log"
    assert any("0 trainable parameters" in t.get_text() for t in axes.texts)


@pytest.mark.parametrize(("peaks", "unit"), [((1.12, 1.68, 2.24, 0.71), "GiB"), ((0.45, 0.452, 0.47, 0.3), "MiB")])
def test_memory_plot_names_methods_in_a_legend_with_round_ticks(peaks, unit):
    data = vary_headlines(load("gen-results.json"))
    for cell in data["cells"]:  # two methods at nearly the same spot, as in the report
        gib = peaks[data["run"]["methods"].index(cell["method"]) % len(peaks)]
        cell["measurements"]["memory"] = {"device_type": "cpu", "train_peak_rss_bytes": int(gib * 1024 ** 3),
                                          "eval_peak_rss_bytes": int(gib * 1024 ** 3)}
    view = build_tasks(data)[0]
    axes = memory_plot(view, {}).axes[0]
    assert axes.get_xlabel() == f"peak memory ({unit})"
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert sorted(legend[:-1]) == sorted(r.method for r in view.rows) and legend[-1].startswith("Pareto front")
    assert not [t for t in axes.texts if t.get_text() in legend], "no method name printed at its point"
    low, high = axes.get_xlim()
    ticks = [t for t in axes.get_xticks() if low <= t <= high]
    assert len(ticks) >= 3
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() / 10 ** math.floor(math.log10(ticks[1] - ticks[0])) in (1, 2, 2.5, 5)
    assert all(round(t / (ticks[1] - ticks[0]), 6).is_integer() for t in ticks), ticks  # multiples of the step


def with_problems(data: dict) -> dict:
    """Add a method that does not apply, one failed seed of lora, and a method whose every seed failed."""
    data["run"]["methods"].append("encoder-head")
    for seed in (0, 1):
        data["cells"].append({"task": "smoke-gen", "method": "encoder-head", "seed": seed, "trial": "",
                              "status": "not_applicable", "error": "needs an encoder model; tiny-llama is causal-lm"})
    for index, cell in enumerate(data["cells"]):
        if cell["method"] == "lora" and cell["seed"] == 1:
            data["cells"][index] = {"task": "smoke-gen", "method": "lora", "seed": 1, "trial": "", "status": "failed",
                                    "error": "RuntimeError: <boom> | loss went NaN"}
        elif cell["method"] == "prefix":
            data["cells"][index] = {"task": "smoke-gen", "method": "prefix", "seed": cell["seed"], "trial": "",
                                    "status": "failed", "error": f"CellFailed: seed {cell['seed']} ran out of memory"}
    return validate(data, "modified")


def test_not_applicable_and_failed_cells_are_listed_with_reasons():
    data = with_problems(vary_headlines(load("gen-results.json")))
    markdown = render_markdown(data)
    na = markdown.split("**Not applicable:**", 1)[1]
    assert "- encoder-head: needs an encoder model; tiny-llama is causal-lm" in na
    rows = {r[0]: r for r in table_rows(markdown, "| Method | n |")}
    assert "encoder-head" not in rows
    assert rows["lora"][1] == "1/2"
    assert rows["prefix"][1] == "0/2" and rows["prefix"][2] == "—"
    assert list(rows)[-1] == "prefix", "a method without any result sorts last"
    failures = table_rows(markdown.split("## Failures", 1)[1], "| Task |")
    assert ["smoke-gen", "lora", "1", "—", r"RuntimeError: &lt;boom&gt; \| loss went NaN"] in failures
    assert len(failures) == 3
    page = render_html(data, plots={})  # text only: skip drawing
    failures_html = page.split('id="failures"', 1)[1]
    assert "RuntimeError: &lt;boom&gt; | loss went NaN" in failures_html and "<boom>" not in page
    assert "needs an encoder model; tiny-llama is causal-lm" in page
    summary = text_of(terminal_tables(data))
    assert "not applicable: encoder-head" in summary and "3 failed cell(s)" in summary


def test_model_output_is_escaped_in_markdown_and_html():
    data = load("gen-results.json")
    cell = next(c for c in data["cells"] if c["method"] == "lora" and c["seed"] == 0)
    cell["samples"][0]["prediction"] = '<script>alert("x")</script> a | b'
    markdown = render_markdown(data)
    samples = table_rows(markdown.split("### Sample outputs", 1)[1], "| Input |")
    assert all(len(r) == 2 + 8 for r in samples), "an escaped pipe must not add a column"
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; a \\| b" in markdown
    page = render_html(data, plots={})  # text only: skip drawing
    assert "<script>" not in without_sort_script(page) and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; a | b" in page


def test_samples_side_by_side_use_the_smallest_seed():
    data = load("gen-results.json")
    for cell in data["cells"]:
        cell["samples"] = [{**s, "prediction": f"{cell['method']} seed {cell['seed']}"} for s in cell["samples"]]
    section = render_markdown(data).split("### Sample outputs", 1)[1]
    assert "seed 0." in section
    rows = table_rows(section, "| Input |")
    first = next(c for c in data["cells"] if c["seed"] == 0)
    assert [r[0] for r in rows] == [s["input"] for s in first["samples"]]
    assert rows[0][2:] == [f"{m} seed 0" for m in data["run"]["methods"]]


def test_sweep_section_lists_tried_values_and_the_choice():
    data = vary_headlines(load("cls-sweep-results.json"))
    markdown = render_markdown(data)
    sweep = table_rows(markdown.split("### Sweep", 1)[1], "| Method | learning")
    for entry in data["sweep"]:
        tried = [t for t in entry["tried"] if t["trial"]]
        rows = [r for r in sweep if r[0] == entry["method"]]
        assert len(rows) == len(tried)
        for row, trial in zip(rows, tried):
            assert row[1] == f"{trial['value']:g}"
            assert row[2].strip("*") == f"{trial['mean_val_loss']:.4f}"
            assert (row[4] == "chosen") == (trial["trial"] == entry["chosen"])
    assert "Not swept (no `learning\\_rate`): zero-shot." in markdown
    # The main table uses only the chosen trial's cells.
    main = {r[0]: r for r in table_rows(markdown, "| Method | n |")}
    chosen = [c for c in selected_cells(data) if c["method"] == "lora"]
    assert {c["trial"] for c in chosen} == {"learning_rate=0.003"}
    values = [c["headline"]["value"] for c in chosen]
    everything = [c["headline"]["value"] for c in data["cells"] if c["method"] == "lora"]
    assert statistics.fmean(values) != pytest.approx(statistics.fmean(everything))
    row = main["lora (learning\\_rate=0.003)"]
    assert row[1] == "2/2"
    assert row[2].strip("*") == f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def test_compare_runs_reports_changes_and_unmatched_cells():
    a = load("gen-results.json")
    b = copy.deepcopy(a)
    for cell in b["cells"]:
        if cell["method"] == "lora":
            cell["headline"]["value"] += 0.25
            cell["measurements"]["train_seconds"] *= 2
    b["cells"] = [c for c in b["cells"] if not (c["method"] == "finetune" and c["seed"] == 1)]
    b["environment"]["packages"]["torch"] = "2.14.0+cpu"
    b["run"]["steps"] = 12
    text = text_of(compare_runs(a, b))
    lora = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("lora "))
    assert "0.000 ± 0.000 (n=2)" in lora and "0.250 ± 0.000 (n=2)" in lora and "+0.250" in lora
    assert "(+100%)" in lora
    ia3 = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("ia3 "))
    assert "│         0 │" in ia3 and "101 ms (same)" in ia3
    assert [(side, c.method, c.seed) for side, c in unmatched_cells(a, b)] == [("A", "finetune", 1)]
    only = text.split("Cells in only one run", 1)[1]
    assert re.search(r"A\s+│\s+smoke-gen\s+│\s+finetune\s+│\s+1\s", only)
    settings = text.split("Settings and environment that differ", 1)[1].split("smoke-gen", 1)[0]
    assert re.search(r"packages\.torch\s+│\s+2\.13\.0\+cpu\s+│\s+2\.14\.0\+cpu", settings)
    assert re.search(r"steps\s+│\s+6\s+│\s+12", settings)
    assert "device" not in settings, "unchanged settings are not listed"


def test_interrupted_run_shows_pending_cells():
    data = load("gen-results.json")
    assert "Warning" not in render_markdown(data)
    data["interrupted"] = True
    data["pending"] = ["smoke-gen/lora/seed 1", "smoke-gen/finetune/seed 1 [learning_rate=0.01]"]
    markdown = render_markdown(data)
    note = markdown.split("> **Warning:**", 1)[1].split("\n\n", 1)[0]
    assert "interrupted" in note and "2 cell(s)" in note
    assert "> - smoke-gen/lora/seed 1" in note and "learning\\_rate=0.01" in note
    page = render_html(data, plots={})  # text only: skip drawing
    warning = page.split('<div class="warning" id="pending">', 1)[1].split("</div>", 1)[0]
    assert "<li>smoke-gen/lora/seed 1</li>" in warning


def test_how_measured_comes_from_the_record():
    data = load("cls-sweep-results.json")
    data["environment"]["device_name"] = "Test CPU <x>"
    markdown = render_markdown(data)
    section = markdown.split("## How measured", 1)[1]
    assert "- **Device:** cpu — Test CPU &lt;x&gt;" in section
    assert "torch 2.13.0+cpu" in section and "- **Prompt format:** auto (resolved: chat)" in section
    assert "- **Model:** tiny-llama (fingerprint tiny-llama:v1)" in section
    assert "- **Cells:** 20 total: 0 reused from cache, 20 run" in section
    assert "VmHWM" in section and "docs/measurements.md" in section


def test_terminal_tables_one_per_task_with_every_method():
    data = load("cls-sweep-results.json")
    tables = terminal_tables(data)
    assert len(tables) == 1 and tables[0].row_count == len(data["run"]["methods"])
    text = text_of(tables)
    assert "prompt" in text and "learning_rate=0.03" in text and "accuracy ↑, mean ± std over 2 seeds" in text


def test_memory_uses_human_units_and_cuda_allocated_peaks():
    assert format_bytes(495_000_000) == "472.1 MiB"
    assert format_bytes(3 * 1024 ** 3) == "3.00 GiB"
    assert format_bytes(8192) == "8.0 KiB"
    data = load("gen-results.json")
    for cell in data["cells"]:
        cell["measurements"]["memory"] = {"device_type": "cuda", "train_peak_allocated_bytes": 2 * 1024 ** 3,
                                          "eval_peak_allocated_bytes": 1024 ** 3, "train_peak_rss_bytes": 1,
                                          "eval_peak_rss_bytes": 1}
    rows = {r[0]: r for r in table_rows(render_markdown(data), "| Method | n |")}
    train_index = 3 + [c.key for c in COST_COLUMNS].index("train_peak_bytes")
    assert rows["lora"][train_index] == "2.00 GiB" and rows["lora"][train_index + 1] == "1.00 GiB"
    assert rows["zero-shot"][train_index] == "—"


def one_seed_with_verdict() -> dict:
    """gen-results.json cut to seed 0, with per-example scores (schema 2) so that the verdict has intervals."""
    data = load("gen-results.json")
    seed = data["run"]["seeds"][0]
    data["cells"] = [c for c in data["cells"] if c["seed"] == seed]
    data["run"]["seeds"] = [seed]
    data["schema_version"] = 2
    methods = data["run"]["methods"]
    for cell in data["cells"]:
        scores = [min(1.0, 0.05 * methods.index(cell["method"]) + 0.01 * (i % 9)) for i in range(30)]
        cell["headline"]["value"] = cell["quality"]["rouge_l"] = statistics.fmean(scores)
        cell["predictions"] = [""] * 30
        cell["per_example"] = {"index": list(range(30)), "references": [""] * 30, "scores": {"rouge_l": scores},
                               "statistics": {}}
    data.pop("verdicts", None)
    return validate(data, "one seed")


def test_one_seed_shows_the_mean_alone_and_the_verdicts_interval():
    from tuning_bench.report.verdicts import verdicts_of

    data = one_seed_with_verdict()
    intervals = {m: v["ci95"] for m, v in verdicts_of(data)[0]["methods"].items()}
    markdown = render_markdown(data)
    assert "± 0.000" not in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| Method | n |"))
    assert header.startswith("| Method | n | rouge\\_l | 95 % CI |")
    for row in table_rows(markdown, "| Method | n |"):
        mean = [c for c in data["cells"] if c["method"] == row[0]][0]["headline"]["value"]
        low, high = intervals[row[0]]
        assert row[2].strip("*") == f"{mean:.3f}" and row[3] == f"[{low:.3f}, {high:.3f}]"
    page = without_sort_script(render_html(data, plots={}))
    assert "± 0.000" not in page and "<th>95 % CI</th>" in page
    text = text_of(terminal_tables(data))
    assert "±" not in text and "one seed" in text


@pytest.mark.parametrize("name", ["gen-results.json", "cls-sweep-results.json", "one seed"])
def test_terminal_tables_fit_80_columns(name):
    from tuning_bench.report import terminal_verdicts

    data = one_seed_with_verdict() if name == "one seed" else load(name)
    console = Console(record=True, width=80, color_system=None, file=open("/dev/null", "w"))
    for item in [*terminal_verdicts(data), *terminal_tables(data)]:
        console.print(item)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines), "nothing is cut"
    start = next(i for i, line in enumerate(lines) if "Params" in line)
    header, body = lines[start], lines[start + 2:]
    for method in data["run"]["methods"]:  # each method's row is one line: name, headline and the four costs
        assert any(line.split()[:1] == [method] and len(line.split()) >= 6 for line in body), method
    assert all(h in header for h in ("Params", "Peak GiB", "Train s", "Latency ms"))


def test_report_html_tables_sort_by_their_raw_values(tmp_path):
    """The inline script, run by node on a minimal stand-in for the DOM: a click on a header orders rows
    by data-v (bytes, not their "MiB/GiB" text), again reverses, and missing values stay last."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the sort script is checked in a browser by hand")
    harness = """
    function cell(text, v) { return { textContent: text, getAttribute: function (n) { return n === "data-v" ? v : null; } }; }
    function row(name, text, v) { return { name: name, cells: [cell(name, null), cell(text, v)] }; }
    var rows = [row("a", "900.0 MiB", "943718400"), row("b", "—", ""), row("c", "1.50 GiB", "1610612736"),
                row("d", "12.0 KiB", "12288")];
    var body = { rows: rows, appendChild: function (r) { this.rows.splice(this.rows.indexOf(r), 1); this.rows.push(r); } };
    function header() {
      var attrs = {}, handlers = {};
      return { setAttribute: function (k, v) { attrs[k] = v; }, getAttribute: function (k) { return k in attrs ? attrs[k] : null; },
               removeAttribute: function (k) { delete attrs[k]; }, addEventListener: function (k, f) { handlers[k] = f; },
               click: function () { handlers.click(); } };
    }
    var headers = [header(), header()];
    headers.forEach = Array.prototype.forEach;
    var table = { tBodies: [body], querySelectorAll: function () { return headers; } };
    var document = { querySelectorAll: function () { return [table]; } };
    SCRIPT
    var order = [];
    headers[1].click(); order.push(body.rows.map(function (r) { return r.name; }).join(""));
    headers[1].click(); order.push(body.rows.map(function (r) { return r.name; }).join(""));
    headers[0].click(); order.push(body.rows.map(function (r) { return r.name; }).join(""));
    console.log(order.join(" "));
    """.replace("SCRIPT", SORT_SCRIPT)
    script = tmp_path / "sort.js"
    script.write_text(harness, encoding="utf-8")
    result = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["dacb", "cadb", "abcd"]


def test_times_taken_on_a_shared_device_are_said_so_under_every_table():
    data = load("gen-results.json")
    for output in (render_markdown(data), render_html(data, plots={}), text_of(terminal_tables(data))):
        assert "shared a device" not in output  # records from before device_shared_by, or alone: no note
    for cell in data["cells"]:
        cell["device_shared_by"] = 1
    assert "shared a device" not in render_markdown(data)
    data["cells"][0]["device_shared_by"] = 4  # e.g. --jobs 4 on one GPU
    assert build_tasks(data)[0].device_shared_by == 4
    expected = "taken while up to 4 cells shared a device (--jobs): compare them only with runs of the same --jobs"
    assert expected in render_markdown(data)
    assert expected in render_html(data, plots={})
    assert expected in " ".join(text_of(terminal_tables(data)).split())  # the caption wraps
