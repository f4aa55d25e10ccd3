"""Typed result records (tuning_bench.run.records): JSON round trips, version-1 files, damaged files, readers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tuning_bench.api.errors import UsageError
from tuning_bench.run.inference import find_cell
from tuning_bench.report import compare_runs, render_markdown
from tuning_bench.report.tables import build_tasks
from tuning_bench.run.records import (CellRecord, Curves, Measurements, Memory, PerExample, RunDocument, RunInfo,
                                      Sample, StateInfo)
from tuning_bench.run.results import csv_text, load_document

DATA = Path(__file__).parent / "data"


def load_json(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def same_json(a: dict, b: dict) -> bool:
    """Equal keys, values and key order (what a diff of the written files would show)."""
    return json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real tiny-model run (a causal model: zero-shot and LoRA, one seed), its folder and JSON."""
    from tuning_bench.host import plugins
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.executor import InProcessExecutor
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    host = plugins.reset_default_host()
    try:
        assert host.add_module("tuning_bench.testing")
        out = tmp_path_factory.mktemp("records") / "run"
        settings = RunSettings(methods=["zero-shot", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0],
                               steps=2, batch_size=4, eval_examples=3, val_examples=2, eval_batch_size=4,
                               out=str(out), executor="in-process", samples=2, precision="fp32")
        data = execute(plan_run(settings, load_catalog()), executor=InProcessExecutor(), prepare_model=False)
    finally:
        plugins.reset_default_host()
    return out, data


def test_a_real_run_document_round_trips_with_typed_fields(tiny_run):
    out, data = tiny_run
    on_disk = json.loads((out / "results.json").read_text(encoding="utf-8"))
    document = load_document(out)
    assert same_json(document.to_json(), on_disk)
    assert isinstance(document.run, RunInfo) and document.run.methods == ["zero-shot", "lora"]
    lora = next(c for c in document.cells if c.method == "lora")
    assert isinstance(lora, CellRecord) and lora.ok and lora.cached is False
    assert isinstance(lora.measurements, Measurements) and lora.measurements.steps == 2 and lora.measurements.trained
    assert isinstance(lora.measurements.memory, Memory) and lora.measurements.peak("train") > 0
    assert isinstance(lora.curves, Curves) and len(lora.curves.train_loss) == 2
    assert isinstance(lora.per_example, PerExample) and lora.per_example.index == [0, 1, 2]
    assert all(isinstance(s, Sample) for s in lora.samples) and len(lora.samples) == 2
    assert isinstance(lora.state, StateInfo) and lora.state.saved_bytes == lora.measurements.saved_bytes > 0
    assert lora.headline.value == lora.quality[lora.headline.metric]
    zero = next(c for c in document.cells if c.method == "zero-shot")
    # An untrained cell has no training-only figures, and they are not written as nulls.
    assert not zero.measurements.present("best_step") and "best_step" not in zero.measurements.to_json()
    for record_file in (out / "cells").glob("*.json"):
        stored = json.loads(record_file.read_text(encoding="utf-8"))
        assert same_json(CellRecord.from_json(stored).to_json(), stored)


def test_version_1_files_read_with_defaults_and_write_back_unchanged():
    data = load_json("gen-results.json")
    assert data["schema_version"] == 1 and "verdicts" not in data
    document = RunDocument.checked(data, "gen")
    assert document.verdicts is None and not document.present("verdicts")
    assert all(c.per_example is None for c in document.cells)
    assert same_json(document.to_json(), data)
    assert "no per-example scores" in render_markdown(document)


def test_missing_newer_fields_get_defaults_and_are_not_invented():
    data = load_json("gen-results.json")
    for key in ("pending", "interrupted"):
        data.pop(key, None)
    data["cells"][0].pop("trial")
    del data["cells"][0]["measurements"]["latency_seconds"]
    document = RunDocument.checked(data, "old")
    assert document.pending == [] and document.interrupted is False
    assert document.cells[0].trial == "" and document.cells[0].measurements.latency_seconds is None
    written = document.to_json()
    assert "pending" not in written and "trial" not in written["cells"][0]
    assert "latency_seconds" not in written["cells"][0]["measurements"]


def test_unknown_keys_are_kept_in_place():
    data = load_json("gen-results.json")
    data = {"from_a_newer_tbench": {"x": 1}, **data}
    cell = data["cells"][0]
    data["cells"][0] = {"note": "added by a script", **cell}
    cell = data["cells"][0]
    cell["measurements"]["energy_joules"] = 12.5
    document = RunDocument.checked(data, "newer")
    assert document.extra == {"from_a_newer_tbench": {"x": 1}}
    assert document.cells[0].extra == {"note": "added by a script"}
    assert document.cells[0].measurements.extra == {"energy_joules": 12.5}
    assert same_json(document.to_json(), data)


def test_a_nested_value_of_the_wrong_type_reads_as_absent():
    data = load_json("gen-results.json")
    data["cells"][0]["curves"] = 3
    data["cells"][0]["samples"] = "lost"
    document = RunDocument.checked(data, "odd")
    assert document.cells[0].curves is None and document.cells[0].samples == []
    assert "curves" not in document.to_json()["cells"][0]
    assert "# tbench report" in render_markdown(document)  # reports still build


DAMAGE = [
    (lambda d: [], "expected a JSON object at the top level, found list"),
    (lambda d: {**d, "schema": "other"}, 'not a tbench results file (missing "schema": "tuning_bench.results")'),
    (lambda d: {**d, "schema_version": 9}, "schema_version 9 is not supported by this tbench (reads 1, 2)"),
    (lambda d: {**d, "cells": {}}, "key 'cells' must be a list of cell records"),
    (lambda d: {**d, "cells": [1]}, "cells[0] must be an object"),
    (lambda d: {**d, "cells": [{k: v for k, v in d["cells"][0].items() if k != "status"}]}, "cells[0] lacks status"),
    (lambda d: {**d, "cells": [{**d["cells"][0], "status": "done"}]},
     "cells[0].status is 'done'; expected one of ok, failed, not_applicable"),
    (lambda d: {**d, "cells": [{**d["cells"][0], "measurements": None}]},
     "cells[0] (smoke-gen/zero-shot) has status ok but no 'measurements' object"),
    (lambda d: {**d, "run": []}, "key 'run' must be an object"),
]


@pytest.mark.parametrize("damage, message", DAMAGE)
def test_damaged_documents_give_one_clear_line(damage, message):
    data = damage(load_json("gen-results.json"))
    with pytest.raises(UsageError) as error:
        RunDocument.checked(data, "f.json")
    assert str(error.value) == f"f.json: {message}"


def test_readers_give_the_same_output_for_a_document_and_its_json():
    data = load_json("cls-sweep-results.json")
    document = RunDocument.checked(copy.deepcopy(data), "sweep")
    assert csv_text(document) == csv_text(data)
    assert render_markdown(document) == render_markdown(data)
    assert build_tasks(document) == build_tasks(data)
    chosen = [c for c in document.shown_cells() if c.method == "lora"]
    assert chosen and all(c.selected is not False for c in chosen)
    assert len(chosen) < len([c for c in document.cells if c.method == "lora"])
    cell = find_cell(document, "lora", None, None)
    assert isinstance(cell, CellRecord) and cell.shown and cell.seed == min(c.seed for c in chosen)
    assert compare_runs(document, data)  # documents and mappings mix


def test_of_writes_only_the_given_fields_in_order_and_assign_appends():
    record = CellRecord.of(task="t", method="m", seed=0, trial="", status="failed", error=None, config={})
    record.assign("cell_seconds", 1.5)
    record.assign("status", "ok")  # already present: keeps its place
    assert list(record.to_json()) == ["task", "method", "seed", "trial", "status", "error", "config", "cell_seconds"]
    assert record.to_json()["status"] == "ok" and not record.present("measurements")
    copied = record.copy()
    copied.assign("key", "abc")
    assert "key" in copied.to_json() and "key" not in record.to_json()
