"""Verdicts: per task, which methods the data says are best, with paired-bootstrap 95 % intervals.

Built from results.json alone. Each task's verdict resamples the test examples every method shares
(the same draws for all methods, which pairs them) and, for a method run with several seeds, the
seeds. It names the best method, the methods not separated from it at 95 % (the best group), the
cheapest of that group by trainable parameters, training peak memory and training time, and the
methods separated below the best. How it is computed is in docs/measurements.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuning_bench.report.tables import TaskView, build_tasks, format_bytes, format_count, format_seconds, format_value
from tuning_bench.run.records import CellRecord, RunDocument, as_cell, as_document
from tuning_bench.stats.bootstrap import (LEVEL, RESAMPLES, SEED, example_weights, examples_to_separate, interval,
                                          method_samples, observed, paired_bootstrap)
from tuning_bench.stats.samples import cell_statistic, example_indices

MIN_EXAMPLES = 10  # below this a percentile interval is too coarse to mean anything
CRITERIA = (("trainable_params", "fewest trainable parameters", format_count),
            ("train_peak_memory", "lowest training peak memory", format_bytes),
            ("train_seconds", "shortest training", format_seconds))


def shared_examples(cells: list[CellRecord]) -> list[int] | None:
    """The test example indices every cell scored, in order; None if a cell kept no per-example data."""
    indices = [example_indices(c) for c in cells]
    if not cells or any(i is None for i in indices):
        return None
    common = set(indices[0]).intersection(*indices[1:])
    return [i for i in indices[0] if i in common]


def _costs(view: TaskView, method: str) -> dict[str, float | None]:
    # A method that does not train costs nothing to train: 0 parameters and 0 seconds; its memory is
    # the evaluation peak (it still has to hold the model).
    row = next(r for r in view.rows if r.method == method)
    return {"trainable_params": row.values.get("trainable_params") if row.trains else 0,
            "train_peak_memory": row.peak_memory,
            "train_seconds": row.values.get("train_seconds") if row.trains else 0.0}


def _empty(view: TaskView, reason: str) -> dict[str, Any]:
    return {"task": view.name, "metric": view.headline_metric, "higher_is_better": view.higher_is_better,
            "computed": False, "reason": reason, "smoke": False, "best": [], "best_group": [],
            "not_separated_from_best": [], "separated_below_best": [], "cheapest": {}, "methods": {},
            "examples": 0, "summary": [f"No verdict for {view.name}: {reason}."]}


def task_verdict(view: TaskView, cells: list[CellRecord], quick: bool, resamples: int = RESAMPLES,
                 seed: int = SEED) -> dict[str, Any]:
    """The verdict for one task from its finished cells (see the module docstring)."""
    metric = view.headline_metric
    ok = [c for c in cells if c.ok]
    by_method: dict[str, list[CellRecord]] = {}
    for row in view.rows:
        chosen = [c for c in ok if c.method == row.method]
        if chosen:
            by_method[row.method] = chosen
    if not by_method:
        return _empty(view, "no method finished")
    shared = shared_examples([c for cs in by_method.values() for c in cs])
    if shared is None:
        return _empty(view, "the results have no per-example scores (written before schema 2); run again to get "
                            "confidence intervals")
    statistics = {m: [cell_statistic(c, metric, shared) for c in cs] for m, cs in by_method.items()}
    if not shared or any(s is None for cs in statistics.values() for s in cs):
        return _empty(view, f"the metric {metric} has no per-example data to resample (no shared test examples, "
                            "or a hub metric)")
    samples = paired_bootstrap(statistics, len(shared), resamples, seed)
    means = {m: observed(cs) for m, cs in statistics.items()}
    sign = 1.0 if view.higher_is_better else -1.0
    top = max(sign * v for v in means.values())
    best = [m for m, v in means.items() if sign * v == top]
    leader = best[0]
    methods: dict[str, Any] = {}
    for method, values in samples.items():
        difference = values - samples[leader]
        low, high = interval(difference)
        # Separated: the whole interval of (method - best) lies on the worse side of zero.
        separated = (high < 0) if view.higher_is_better else (low > 0)
        methods[method] = {"mean": means[method], "ci95": list(interval(values)),
                           "difference_to_best": means[method] - means[leader], "difference_ci95": [low, high],
                           "separated_from_best": bool(separated and method not in best),
                           "seeds": len(statistics[method]), **_costs(view, method)}
    group = [m for m in methods if not methods[m]["separated_from_best"]]
    below = [m for m in methods if methods[m]["separated_from_best"]]
    cheapest = {}
    for key, _, _ in CRITERIA:
        known = [(methods[m][key], m) for m in group if methods[m][key] is not None]
        if known:
            value = min(v for v, _ in known)
            cheapest[key] = {"methods": [m for v, m in known if v == value], "value": value}
    verdict = {"task": view.name, "metric": metric, "higher_is_better": view.higher_is_better, "computed": True,
               "reason": None, "best": best, "best_group": group,
               "not_separated_from_best": [m for m in group if m not in best], "separated_below_best": below,
               "cheapest": cheapest, "methods": methods, "examples": len(shared), "resamples": resamples,
               "bootstrap_seed": seed, "level": LEVEL}
    verdict["smoke"] = _is_smoke(verdict, quick)
    verdict["separation_estimate"] = _separation_estimate(verdict, samples)
    verdict["summary"] = summary(verdict)
    return verdict


def _is_smoke(verdict: dict[str, Any], quick: bool) -> bool:
    """A smoke run: --quick, fewer than MIN_EXAMPLES test examples, or every method's interval at least
    as wide as the whole spread of the means (the run resolves nothing)."""
    methods = verdict["methods"].values()
    means = [m["mean"] for m in methods]
    spread = max(means) - min(means)
    return (quick or verdict["examples"] < MIN_EXAMPLES
            or all(m["ci95"][1] - m["ci95"][0] >= spread for m in methods))


def _ranked(verdict: dict[str, Any]) -> list[str]:
    """Method names, best mean first (stable for ties)."""
    sign = -1.0 if verdict["higher_is_better"] else 1.0
    return sorted(verdict["methods"], key=lambda m: sign * verdict["methods"][m]["mean"])


def _separation_estimate(verdict: dict[str, Any], samples: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """For the best and the runner-up when they are not separated: examples that would separate them."""
    ranked = _ranked(verdict)
    if len(ranked) < 2 or verdict["methods"][ranked[1]]["separated_from_best"]:
        return None
    first, second = ranked[0], ranked[1]
    difference = verdict["methods"][first]["mean"] - verdict["methods"][second]["mean"]
    spread = float(np.std(samples[first] - samples[second]))
    needed = examples_to_separate(difference, spread, verdict["examples"])
    return {"methods": [first, second], "difference": difference, "examples_needed": needed}


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def summary(verdict: dict[str, Any]) -> list[str]:
    """The verdict as plain sentences, in the order every output shows them."""
    if not verdict["computed"]:
        return [f"No verdict for {verdict['task']}: {verdict['reason']}."]
    metric, methods = verdict["metric"], verdict["methods"]
    lines = []
    if verdict["smoke"]:
        lines.append(f"Smoke run ({verdict['examples']} test examples): it supports no conclusion about which method "
                     "is better. Run without --quick, with more test examples or seeds, for a verdict.")
    leader = verdict["best"][0]
    low, high = methods[leader]["ci95"]
    lines.append(f"Best on {metric}: {_names(verdict['best'])} ({format_value('metric', methods[leader]['mean'])}, "
                 f"95 % CI [{format_value('metric', low)}, {format_value('metric', high)}]).")
    if verdict["not_separated_from_best"]:
        lines.append(f"Not separated from it at 95 %: {_names(verdict['not_separated_from_best'])}; "
                     "the data cannot rank the best group.")
    lines.append(f"Separated below the best: {_names(verdict['separated_below_best'])}.")
    cheap = [f"{label}: {_names(verdict['cheapest'][key]['methods'])} ({fmt(verdict['cheapest'][key]['value'])})"
             for key, label, fmt in CRITERIA if key in verdict["cheapest"]]
    if cheap and len(verdict["best_group"]) > 1:
        lines.append("Cheapest in the best group — " + "; ".join(cheap) + ".")
    estimate = verdict.get("separation_estimate")
    if estimate:
        first, second = estimate["methods"]
        size = (f"about {estimate['examples_needed']:,} test examples (this run has {verdict['examples']})"
                if estimate["examples_needed"] else "more data than any run: no difference was measured")
        lines.append(f"Little is separated: telling {first} from {second} (difference "
                     f"{estimate['difference']:+.3g}) would take {size}, at the measured spread.")
    return lines


def build_verdicts(data: RunDocument | dict[str, Any], resamples: int = RESAMPLES, seed: int = SEED) -> list[dict[str, Any]]:
    """One verdict per task of a results record (schema 1 records get verdicts that say why there is none)."""
    document = as_document(data)
    shown = document.shown_cells()
    return [task_verdict(view, [c for c in shown if c.task == view.name], bool(document.run.quick), resamples, seed)
            for view in build_tasks(document)]


def verdicts_of(data: RunDocument | dict[str, Any]) -> list[dict[str, Any]]:
    """The record's stored verdicts, or (older records) verdicts computed now from its cells."""
    document = as_document(data)
    stored = document.verdicts
    return stored if isinstance(stored, list) else build_verdicts(document)


def headline_intervals(verdicts: list[dict[str, Any]], task: str) -> dict[str, Any]:
    """Each method's 95 % interval of the task's headline from its verdict; empty when none was computed."""
    for verdict in verdicts:
        if verdict.get("task") == task and verdict.get("computed"):
            return {method: m.get("ci95") for method, m in (verdict.get("methods") or {}).items()}
    return {}


VERDICT_HEADER = ["Method", "Mean", "95 % CI", "Δ to best (95 % CI)", "Seeds", "Verdict"]


def verdict_rows(verdict: dict[str, Any]) -> list[list[str]]:
    """The verdict's per-method table as text cells (same in every output), best group first."""
    rows = []
    f = lambda v: format_value("metric", v)  # noqa: E731
    ranked = _ranked(verdict)
    for method in sorted(ranked, key=lambda name: verdict["methods"][name]["separated_from_best"]):  # stable: by mean within
        m = verdict["methods"][method]
        low, high = m["ci95"]
        dlow, dhigh = m["difference_ci95"]
        label = "best" if method in verdict["best"] else ("below best" if m["separated_from_best"] else "best group")
        difference = f"{m['difference_to_best']:+.3f} [{dlow:+.3f}, {dhigh:+.3f}]"
        rows.append([method, f(m["mean"]), f"[{f(low)}, {f(high)}]", "—" if method in verdict["best"] else difference,
                     str(m["seeds"]), label])
    return rows


def change_interval(cells_a: list[CellRecord | dict[str, Any]], cells_b: list[CellRecord | dict[str, Any]], metric: str,
                    resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any] | None:
    """One method's change from run A to run B on the test examples both runs scored, paired on them.

    Returns the change of the mean over seeds (B − A) on those examples, its 95 % interval (examples
    resampled once for both runs; seeds drawn together when both runs have the same seeds, else
    within each run) and the example count; None when either run
    kept no per-example data for ``metric``.
    """
    ok_a = sorted((c for c in map(as_cell, cells_a) if c.ok), key=lambda c: c.seed)
    ok_b = sorted((c for c in map(as_cell, cells_b) if c.ok), key=lambda c: c.seed)
    shared = shared_examples(ok_a + ok_b)
    if not shared:
        return None
    stats_a = [cell_statistic(c, metric, shared) for c in ok_a]
    stats_b = [cell_statistic(c, metric, shared) for c in ok_b]
    if any(s is None for s in stats_a + stats_b):
        return None
    weights = example_weights(len(shared), resamples, seed)
    # With the same seeds on both sides, seed k of A and seed k of B are drawn together (one stream).
    same_seeds = [c.seed for c in ok_a] == [c.seed for c in ok_b]
    sample_a = method_samples(stats_a, weights, "A", seed)
    sample_b = method_samples(stats_b, weights, "A" if same_seeds else "B", seed)
    low, high = interval(sample_b - sample_a)
    return {"change": observed(stats_b) - observed(stats_a), "ci95": [low, high], "examples": len(shared)}


def cell_intervals(cell: CellRecord | dict[str, Any], resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, tuple[float, float]]:
    """Each quality metric of one cell with its 95 % percentile interval over the cell's own test examples
    (resampled as the verdicts resample them); metrics without per-example data are left out."""
    cell = as_cell(cell)
    indices = example_indices(cell)
    if not indices:
        return {}
    weights = example_weights(len(indices), resamples, seed)
    intervals = {}
    for metric in cell.quality:
        statistic = cell_statistic(cell, metric, indices)
        if statistic is not None:
            intervals[metric] = interval(statistic.resampled(weights))
    return intervals
