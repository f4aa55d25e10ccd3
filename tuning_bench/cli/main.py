"""The ``tbench`` command line."""

from __future__ import annotations

import functools
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from tuning_bench import __version__
from tuning_bench.cli.console import stderr, stdout
from tuning_bench.api.errors import FetchError, UsageError
from tuning_bench.run.settings import click_options


def _catalog():
    from tuning_bench.host.plugins import load_catalog, warn_failures

    catalog = load_catalog()
    warn_failures(catalog)
    return catalog


def _emit_json(rows: list[dict[str, Any]]) -> None:
    click.echo(json.dumps(rows, indent=1, default=str))


# Below this many columns a listing leaves out its secondary columns (they stay in --json), so that the rest
# is not folded a word per line.
WIDE_TABLE = 120


def _table(title: str, columns: list[str], rows: list[list[Any]], secondary: tuple[str, ...] = (),
           whole: tuple[str, ...] = ()) -> None:
    """Print a listing. ``secondary`` columns are left out on a terminal narrower than ``WIDE_TABLE``;
    ``whole`` columns (short names) are never folded, so a name reads as one word."""
    shown = [i for i, c in enumerate(columns) if not (c in secondary and stdout.width < WIDE_TABLE)]
    table = Table(title=title, title_justify="left")
    for i in shown:
        table.add_column(columns[i], overflow="fold", no_wrap=columns[i] in whole)
    for row in rows:
        table.add_row(*[escape(str(row[i])) if row[i] is not None else "" for i in shown])  # cells are user text, not markup
    stdout.print(table)


class TbenchGroup(click.Group):
    """Turns user errors into one line on stderr and exit code 2, instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UsageError, FetchError) as exc:
            stderr.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(2)


@click.group(cls=TbenchGroup)
@click.version_option(__version__, prog_name="tbench")
def cli() -> None:
    """tbench: which way of adapting a language model fits your task? Train each method on shared
    tasks with one engine and compare quality, parameters, memory and time."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def methods(as_json: bool) -> None:
    """List the adaptation methods (built-in and from plugins), grouped by family."""
    from tuning_bench.api.method import FAMILIES

    catalog = _catalog()
    rows = [m.summary() | {"plugin": catalog.methods.owner(m.name)} for m in catalog.methods]
    # Like next to like; registration order within a family (sorted is stable).
    rows.sort(key=lambda r: FAMILIES.index(r["family"]) if r["family"] in FAMILIES else len(FAMILIES))
    if as_json:
        return _emit_json(rows)
    _table("Methods by family (* = in the default run; options, their sources and plugins: tbench methods --json"
           + (", or a terminal of 120 columns)" if stdout.width < WIDE_TABLE else ")"),
           ["family", "name", "trains", "description", "options", "plugin"], [
        [r["family"] if i == 0 or rows[i - 1]["family"] != r["family"] else "",
         r["name"] + (" *" if r["in_default_run"] else ""), "yes" if r["trains"] else "no", r["description"],
         ", ".join(o["name"] for o in r["options"]), r["plugin"]] for i, r in enumerate(rows)],
           secondary=("options", "plugin"), whole=("name", "trains"))


def _listing_group(listing: Any) -> click.Group:
    """A `tbench NAME` command that lists (optionally as JSON) and also holds subcommands (`tbench tasks show`)."""

    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    @functools.wraps(listing)
    def group(ctx: click.Context, as_json: bool) -> None:
        if not ctx.invoked_subcommand:  # a subcommand does its own output
            listing(as_json)

    return cli.group(invoke_without_command=True, cls=TbenchGroup)(group)


@_listing_group
def tasks(as_json: bool) -> None:
    """List the tasks; `tbench tasks show NAME` previews one."""
    catalog = _catalog()
    rows = []
    for task in catalog.tasks:
        splits = task.splits()
        rows.append(task.summary() | {"plugin": catalog.tasks.owner(task.name),
                                       "sizes": {k: len(v) for k, v in splits.items()}})
    if as_json:
        return _emit_json(rows)
    _table("Tasks", ["name", "kind", "headline", "train/val/test", "description"], [
        [r["name"], r["kind"], r["headline"], "/".join(str(r["sizes"][k]) for k in ("train", "validation", "test")),
         r["description"]] for r in rows])


@tasks.command("show")
@click.argument("name")
@click.option("-n", "count", default=3, show_default=True, type=click.IntRange(min=0), help="Examples to show.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks_show(name: str, count: int, split: str, as_json: bool) -> None:
    """Preview a task (or a YAML task file): split sizes, instruction and examples."""
    from tuning_bench.host.lookup import resolve_task

    task = resolve_task(_catalog(), name)
    splits = task.splits()
    examples = splits[split][:count]
    if as_json:
        return _emit_json([task.summary() | {"sizes": {k: len(v) for k, v in splits.items()}, "instruction": task.instruction,
                           "examples": [{"input": task.render_input(e), "target": task.render_target(e)} for e in examples]}])
    stdout.print(f"[bold]{escape(task.name)}[/] ({task.kind.value}): {escape(task.description)}")
    stdout.print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    stdout.print(escape(f"metrics: {', '.join(task.metrics)} (headline {task.headline}, "
                 f"{'higher' if task.higher_is_better else 'lower'} is better)"))
    if task.labels:
        stdout.print(escape(f"labels: {', '.join(task.labels)}"))
    stdout.print(escape(f"instruction: {task.instruction}"), highlight=False)
    _table(f"{split} examples", ["input", "target"], [[task.render_input(e), task.render_target(e)] for e in examples])


@_listing_group
def models(as_json: bool) -> None:
    """List the model sources; `tbench models fetch NAME` downloads and verifies one."""
    catalog = _catalog()
    rows = [m.summary() | {"plugin": catalog.models.owner(m.name)} for m in catalog.models]
    if as_json:
        return _emit_json(rows)
    _table("Models (any Hugging Face id or local folder also works with --model)", ["name", "kind", "description", "plugin"],
           [[r["name"], r["kind"], r["description"], r["plugin"]] for r in rows])


@models.command("fetch")
@click.argument("name")
@click.option("--force", is_flag=True, help="Discard the cached copy and fetch again.")
def models_fetch(name: str, force: bool) -> None:
    """Download, verify (sha256) and prepare a model, so runs need no network."""
    from tuning_bench.host.lookup import resolve_model

    source = resolve_model(_catalog(), name)
    source.prepare(force=force)
    stdout.print(escape(f"{name}: ready"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List loaded plugins with their versions and hooks, and plugins that failed to load."""
    from tuning_bench.host.plugins import plugin_infos

    catalog = _catalog()
    rows = plugin_infos()
    for failure in catalog.failures:
        rows.append({"name": failure.plugin, "version": None, "builtin": failure.plugin.startswith("builtin:"),
                     "hooks": [], "error": failure.message()})
    if as_json:
        return _emit_json(rows)
    _table("Plugins", ["name", "version", "hooks", "status"], [
        [r["name"], r.get("version"), ", ".join(r["hooks"]), r.get("error") or "loaded"] for r in rows])


@cli.command()
@click_options
@click.option("--config", "config_file", type=click.Path(), help="Suite config file (YAML) with any of these settings.")
@click.option("--set", "set_items", multiple=True, help="Method option override, METHOD.OPTION=VALUE (repeatable).")
@click.option("--quick", is_flag=True, help="A smoke run: few steps and few evaluation examples.")
@click.option("--force", is_flag=True, help="Run every cell again, even if a result is cached.")
@click.option("--out-overwrite", is_flag=True, help="Write into a non-empty --out that is not a tbench run (its report and CSV files are replaced).")
def run(config_file, set_items, quick, force, out_overwrite, **setting_values) -> None:
    """Train and measure each method on each task, then write results and reports."""
    from tuning_bench.cli.liveview import LiveView
    from tuning_bench.api.options import parse_set_arguments
    from tuning_bench.run.runner import Interrupted, execute, plan_run, print_failures
    from tuning_bench.run.settings import build_settings, flag_values, load_suite

    flags = flag_values(setting_values)
    flags["options"] = parse_set_arguments(set_items) or None
    for task_file in flags.get("task_files", []):
        if not task_file.lower().endswith((".yaml", ".yml")):
            raise UsageError(f"--task-file {task_file}: --task-file takes a .yaml file that describes the task and "
                             "names its data (a .jsonl or .csv goes under data: in it; see docs/tasks.md)")
    if "task_files" in flags and "tasks" not in flags:
        flags["tasks"] = []  # a task file replaces the default task unless --tasks is also given
    suite = load_suite(Path(config_file)) if config_file else {}
    settings = build_settings(quick, suite, flags)
    catalog = _catalog()
    plan = plan_run(settings, catalog, command="tbench " + shlex.join(sys.argv[1:]))

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    view = LiveView()
    try:
        data = execute(plan, view=view, force=force, out_overwrite=out_overwrite)
    except Interrupted as exc:
        stderr.print(f"[yellow]{escape(str(exc))}[/]; run the same command again to resume")
        sys.exit(130)
    finally:
        view.close()
        signal.signal(signal.SIGTERM, previous)
    from tuning_bench.report import terminal_tables, terminal_verdicts

    # The verdict first: it answers the question the run was for; the tables below are its evidence.
    for table in [*terminal_verdicts(data), *terminal_tables(data)]:
        stdout.print(table)
    stdout.print(escape(f"results: {plan.out_dir / 'results.json'}, report: {plan.out_dir / 'report.html'}"))
    failed = [c for c in data["cells"] if c["status"] == "failed"]
    if failed:
        print_failures(data)
        sys.exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild report.md, report.html and results.csv from RUN_DIR/results.json alone."""
    from tuning_bench.report import write_reports
    from tuning_bench.files import atomic_write_text
    from tuning_bench.run.results import csv_text, load_results

    data = load_results(run_dir)
    out = run_dir if run_dir.is_dir() else run_dir.parent
    paths = write_reports(out, data)
    atomic_write_text(out / "results.csv", csv_text(data))
    stdout.print("wrote " + ", ".join(str(p) for p in paths if p.suffix in (".md", ".html")))


@cli.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
def compare(run_a: Path, run_b: Path) -> None:
    """Show what changed between two runs (quality, cost, settings, environment)."""
    from tuning_bench.report import compare_runs
    from tuning_bench.run.results import load_results

    result = compare_runs(load_results(run_a), load_results(run_b))
    for item in result if isinstance(result, list) else [result]:
        stdout.print(item)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--method", required=True, help="Which method's trained state to use.")
@click.option("--task", help="Task of the run (needed when the run has several).")
@click.option("--seed", type=int, help="Seed of the cell (default: the smallest).")
@click.option("--device", help="Device to answer on (default: the one the run used), e.g. cpu.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), help="Precision (default: the one the run used).")
def generate(run_dir: Path, inputs: tuple[str, ...], method: str, task: str | None, seed: int | None,
             device: str | None, precision: str | None) -> None:
    """Answer new INPUTS with the state a run trained, exactly as its evaluation answered (same encoding,
    truncation, batch size, device and precision), e.g. tbench generate RUN --method prompt "earbuds, 8-hour battery"."""
    from tuning_bench.run.inference import load_trained

    trained = load_trained(run_dir, _catalog(), method, task, seed, device, precision)
    for text, answer in zip(inputs, trained.answer(list(inputs))):
        stdout.print(f"[bold]{escape(text)}[/]\n  {escape(answer)}", highlight=False)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--method", required=True, help="Which method's trained state to export.")
@click.option("--task", help="Task of the run (needed when the run has several).")
@click.option("--seed", type=int, help="Seed of the cell (default: the smallest).")
def export(run_dir: Path, dest: Path, method: str, task: str | None, seed: int | None) -> None:
    """Copy a method's trained state from RUN_DIR to a new folder DEST, with a README.md model card (task,
    metric with its 95 % CI, budget, versions); PEFT states load there with PeftModel.from_pretrained."""
    from tuning_bench.run.export import export_state

    out = export_state(run_dir, method, dest, task, seed)
    stdout.print(escape(f"exported {method} to {out} (model card: {out / 'README.md'})"), highlight=False)


@cli.command("cell")
@click.argument("spec_file", type=click.Path(path_type=Path))
@click.argument("cell_dir", type=click.Path(path_type=Path))
@click.option("--token-cache", type=click.Path(path_type=Path), help="Folder of tokenized tasks shared by cells.")
def cell_command(spec_file: Path, cell_dir: Path, token_cache: Path | None) -> None:
    """Run one cell from a JSON cell spec in this process and print its result record as JSON.

    This is what an executor runs on a worker; `tbench run` does it for you.
    """
    from tuning_bench.engine.cell import CellSpec, run_cell

    try:
        spec = CellSpec.from_dict(json.loads(spec_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{spec_file}: not a cell spec ({exc})") from None
    record = run_cell(spec, cell_dir, token_cache)
    click.echo(json.dumps(record, default=str))
    sys.exit(0 if record["status"] != "failed" else 1)


def _add_plugin_commands() -> None:
    from tuning_bench.host.plugins import default_host

    default_host().add_commands(cli)


def main() -> None:
    from tuning_bench.api.errors import PluginError

    try:
        _add_plugin_commands()
        cli(prog_name="tbench")
    except (UsageError, FetchError, PluginError) as exc:
        stderr.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
