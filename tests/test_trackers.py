"""--log-to: one tracker run per cell, grouped per tbench run, read back with each tracker's own reader."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tuning_bench.api.errors import UsageError
from tuning_bench.host.plugins import load_catalog
from tuning_bench.run import tracking
from tuning_bench.run.executor import InProcessExecutor
from tuning_bench.run.runner import RunView, execute, plan_run
from tuning_bench.run.settings import RunSettings, flag_values


def settings(tmp_path: Path, **overrides) -> RunSettings:
    values = dict(methods=["zero-shot", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0], steps=4,
                  batch_size=4, eval_examples=4, val_examples=2, val_every=2, eval_batch_size=4,
                  out=str(tmp_path / "run"), executor="in-process", samples=1, latency=False)
    values.update(overrides)
    return RunSettings(**values)


class Warnings(RunView):
    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


def run(s: RunSettings, **kwargs) -> tuple[dict, Warnings]:
    view = Warnings()
    data = execute(plan_run(s, load_catalog()), executor=InProcessExecutor(), view=view, prepare_model=False, **kwargs)
    return data, view


def cell_of(data: dict, method: str) -> dict:
    return next(c for c in data["cells"] if c["method"] == method)


class FakeTracker:
    """Keeps what it is given; ``fail`` makes it raise like a tracker whose store is unreachable."""

    logged: list = []
    fail = False

    def __init__(self, out_dir):
        self.destination = str(out_dir)

    def log(self, log):
        if FakeTracker.fail:
            raise ConnectionError("store unreachable\nsecond line")
        FakeTracker.logged.append(log)


@pytest.fixture
def fake_tracker(monkeypatch):
    monkeypatch.setitem(tracking.TRACKERS, "fake", tracking.TrackerKind("fake", ("json",), "pip install fake", FakeTracker))
    monkeypatch.setattr(FakeTracker, "logged", [])
    monkeypatch.setattr(FakeTracker, "fail", False)
    return FakeTracker


def test_log_to_is_a_comma_list_flag_and_outside_the_cache_key():
    from tuning_bench.run.settings import outside_cache_key

    assert flag_values({"setting_log_to": "tensorboard, mlflow"})["log_to"] == ["tensorboard", "mlflow"]
    assert "log_to" in outside_cache_key()


def test_an_unknown_tracker_is_refused_with_suggestions(tiny, tmp_path):
    with pytest.raises(UsageError, match=r"Unknown tracker 'tensorbord' in --log-to\. Did you mean: tensorboard\?"):
        plan_run(settings(tmp_path, log_to=["tensorbord"]), load_catalog())
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["tensorboard", "mlflow", "wandb", "trackio"])
def test_a_tracker_not_installed_is_one_line_naming_the_pip_command(tiny, tmp_path, monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None if module == name else real(module, *a))
    with pytest.raises(UsageError) as error:
        plan_run(settings(tmp_path, log_to=[name]), load_catalog())
    assert str(error.value) == (f"--log-to {name}: the {name} package is not installed; install it with "
                                f"pip install 'tuning-bench[{name}]'")


def test_each_cell_is_one_tracker_run_with_curves_metrics_costs_and_config(tiny, tmp_path, fake_tracker):
    data, _ = run(settings(tmp_path, log_to=["fake"]))
    logs = {log.tags["tbench.method"]: log for log in fake_tracker.logged}
    assert sorted(logs) == ["lora", "zero-shot"]
    lora, record = logs["lora"], cell_of(data, "lora")
    assert lora.tags["tbench.run"] == str((tmp_path / "run").resolve()) and lora.tags["tbench.cell_key"] == record["key"]
    assert lora.series["train/loss"] == [(step, v) for step, v in enumerate(record["curves"]["train_loss"], 1)]
    assert [s for s, _ in lora.series["train/learning_rate"]] == [1, 2, 3, 4]
    assert lora.series["validation/loss"] == [tuple(p) for p in record["curves"]["val_loss"]] and lora.series["validation/loss"]
    assert lora.final["quality/rouge_l"] == record["quality"]["rouge_l"]
    assert lora.final["quality/rouge_l_ci95_low"] <= record["quality"]["rouge_l"] <= lora.final["quality/rouge_l_ci95_high"]
    assert lora.final["cost/trainable_params"] == record["measurements"]["trainable_params"] > 0
    assert lora.final["cost/train_seconds"] > 0 and lora.final_step == 4
    assert lora.params["method_config.r"] == 8 and lora.params["steps"] == 4 and lora.params["model"] == "tiny-llama"
    assert "train/loss" not in logs["zero-shot"].series  # nothing trained, no curve
    assert logs["zero-shot"].folder == "tiny-gen/zero-shot/seed-0"


def test_each_cell_is_logged_once_per_tracker_cached_cells_too(tiny, tmp_path, fake_tracker):
    run(settings(tmp_path))  # no tracker
    assert fake_tracker.logged == []
    run(settings(tmp_path, log_to=["fake"]))  # every cell cached: logged now, as the tracker lacks them
    assert sorted(log.tags["tbench.method"] for log in fake_tracker.logged) == ["lora", "zero-shot"]
    run(settings(tmp_path, log_to=["fake"]))  # the same command again logs nothing twice
    assert len(fake_tracker.logged) == 2
    run(settings(tmp_path, log_to=["fake"]), force=True)  # cells that run again are logged again
    assert len(fake_tracker.logged) == 4


def test_a_failing_tracker_warns_and_the_run_goes_on(tiny, tmp_path, fake_tracker):
    fake_tracker.fail = True
    data, view = run(settings(tmp_path, log_to=["fake"]))
    assert all(c["status"] == "ok" for c in data["cells"]) and (tmp_path / "run" / "report.html").exists()
    assert len(view.warnings) == 2
    assert view.warnings[0].startswith("--log-to fake: could not log tiny-gen/") and \
        view.warnings[0].endswith("(ConnectionError: store unreachable); the run goes on")
    fake_tracker.fail = False
    run(settings(tmp_path, log_to=["fake"]))  # not marked as logged: the next run logs them
    assert len(fake_tracker.logged) == 2


def test_tensorboard_event_files_read_back_with_tensorboards_reader(tiny, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    data, view = run(settings(tmp_path, log_to=["tensorboard"]))
    assert view.warnings == []
    record = cell_of(data, "lora")
    folder = tmp_path / "run" / "tensorboard" / "tiny-gen" / "lora" / "seed-0"
    events = EventAccumulator(str(folder))
    events.Reload()
    train = events.Scalars("train/loss")
    assert [e.step for e in train] == [1, 2, 3, 4]
    assert [e.value for e in train] == pytest.approx(record["curves"]["train_loss"], rel=1e-6)
    assert [(e.step, e.value) for e in events.Scalars("validation/loss")] == \
        [(s, pytest.approx(v, rel=1e-6)) for s, v in record["curves"]["val_loss"]]
    assert [e.value for e in events.Scalars("train/learning_rate")] == pytest.approx(record["curves"]["learning_rate"])
    assert events.Scalars("quality/rouge_l")[0].value == pytest.approx(record["quality"]["rouge_l"], rel=1e-6)
    assert events.Scalars("quality/rouge_l_ci95_high")[0].value >= events.Scalars("quality/rouge_l_ci95_low")[0].value
    assert events.Scalars("cost/trainable_params")[0].value == record["measurements"]["trainable_params"]
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["method_config.r"].number_value == 8 and hparams["method"].string_value == "lora"
    zero_shot = EventAccumulator(str(folder.parent.parent / "zero-shot" / "seed-0"))
    zero_shot.Reload()
    assert "train/loss" not in zero_shot.Tags()["scalars"] and "quality/rouge_l" in zero_shot.Tags()["scalars"]
    files = sorted(p.name for p in folder.iterdir())
    run(settings(tmp_path, log_to=["tensorboard"]), force=True)  # a cell run again replaces its event files
    assert len(list(folder.iterdir())) == len(files) and sorted(p.name for p in folder.iterdir()) != files


def test_mlflow_store_reads_back_with_mlflows_client(tiny, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tuning_bench.run.trackers import default_mlflow_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data, view = run(settings(tmp_path, log_to=["mlflow"]))
    assert view.warnings == []
    out = tmp_path / "run"
    client = MlflowClient(tracking_uri=default_mlflow_uri(out))
    experiment = client.get_experiment_by_name(f"tbench {out.resolve()}")
    runs = {r.data.tags["tbench.method"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["lora", "zero-shot"]
    lora, record = runs["lora"], cell_of(data, "lora")
    assert lora.info.status == "FINISHED" and lora.info.run_name == "tiny-gen/lora/seed 0"
    assert lora.data.params["method_config.r"] == "8" and lora.data.params["steps"] == "4"
    history = client.get_metric_history(lora.info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == \
        [(s, pytest.approx(v)) for s, v in enumerate(record["curves"]["train_loss"], 1)]
    assert len(client.get_metric_history(lora.info.run_id, "train/learning_rate")) == 4
    assert [m.step for m in client.get_metric_history(lora.info.run_id, "validation/loss")] == \
        [s for s, _ in record["curves"]["val_loss"]]
    assert lora.data.metrics["quality/rouge_l"] == pytest.approx(record["quality"]["rouge_l"])
    assert lora.data.metrics["quality/rouge_l_ci95_low"] <= lora.data.metrics["quality/rouge_l_ci95_high"]
    assert lora.data.metrics["cost/train_seconds"] == pytest.approx(record["measurements"]["train_seconds"])
    run(settings(tmp_path, log_to=["mlflow"]))  # all cached and logged: no second run per cell
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_the_final_figures_join_the_last_step_for_trackers_whose_steps_only_go_forward():
    from tuning_bench.run.trackers import logged_steps

    log = tracking.CellLog(name="t/m/seed 0", folder="t/m/seed-0", status="ok", final_step=3,
                           series={"train/loss": [(1, 3.0), (2, 2.0), (3, 1.0)], "validation/loss": [(2, 2.5)]},
                           final={"quality/x": 0.5})
    assert logged_steps(log) == [(1, {"train/loss": 3.0}), (2, {"train/loss": 2.0, "validation/loss": 2.5}),
                                 (3, {"train/loss": 1.0, "quality/x": 0.5})]
    log.final_step = 2  # never below a step already logged
    assert logged_steps(log)[-1] == (3, {"train/loss": 1.0, "quality/x": 0.5})
    assert logged_steps(tracking.CellLog(name="z", folder="z", status="ok", final={"quality/x": 1.0})) == \
        [(0, {"quality/x": 1.0})]


def test_run_label_is_the_folder_name_made_unique_per_path(tmp_path):
    one, other = tracking.run_label(tmp_path / "my run.v2"), tracking.run_label(tmp_path / "x" / "my run.v2")
    assert one.startswith("my-run-v2-") and len(one) == len("my-run-v2-") + 8 and one != other
    assert one == tracking.run_label(tmp_path / "my run.v2")


@pytest.fixture
def wandb_offline(monkeypatch, tmp_path):
    """W&B with none of the user's settings: offline by default, its config and caches in tmp_path."""
    pytest.importorskip("wandb")
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def wandb_records(run_file: Path) -> list[dict]:
    """The records of an offline run's .wandb file, read by W&B's own reader (``wandb leet inspect --json``)."""
    done = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", str(run_file), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_wandb_offline_runs_read_back_with_wandbs_reader(tiny, tmp_path, wandb_offline):
    data, view = run(settings(tmp_path, log_to=["wandb"]))
    assert view.warnings == []
    out = tmp_path / "run"
    files = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2  # one W&B run per cell, offline, under the output folder
    runs = {}
    for file in files:
        records = wandb_records(file)
        header = next(r["run"] for r in records if r["type"] == "run")
        runs[header["config"]["update"]["tbench.method"]] = (header, records)
    assert sorted(runs) == ["lora", "zero-shot"]
    header, records = runs["lora"]
    record = cell_of(data, "lora")
    assert header["display_name"] == "tiny-gen/lora/seed 0" and header["project"] == "tbench"
    assert header["run_group"] == tracking.run_label(out) == runs["zero-shot"][0]["run_group"]
    config = header["config"]["update"]
    assert config["method_config.r"] == 8 and config["steps"] == 4 and config["tbench.cell_key"] == record["key"]
    history = {r["history"]["step"]["num"]: r["history"]["item"] for r in records if r["type"] == "history"}
    assert [history[s]["train/loss"] for s in (1, 2, 3, 4)] == pytest.approx(record["curves"]["train_loss"])
    assert [history[s]["train/learning_rate"] for s in (1, 2, 3, 4)] == pytest.approx(record["curves"]["learning_rate"])
    assert [(s, history[s]["validation/loss"]) for s, _ in record["curves"]["val_loss"]] == \
        [(s, pytest.approx(v)) for s, v in record["curves"]["val_loss"]]
    assert history[4]["quality/rouge_l"] == pytest.approx(record["quality"]["rouge_l"])
    assert history[4]["quality/rouge_l_ci95_low"] <= history[4]["quality/rouge_l_ci95_high"]
    assert history[4]["cost/train_seconds"] == pytest.approx(record["measurements"]["train_seconds"])
    assert next(r["exit"] for r in records if r["type"] == "exit").get("exit_code", 0) == 0
    zero_shot = {r["history"]["step"]["num"]: r["history"]["item"] for r in runs["zero-shot"][1] if r["type"] == "history"}
    assert list(zero_shot) == [0] and "train/loss" not in zero_shot[0] and "quality/rouge_l" in zero_shot[0]
    run(settings(tmp_path, log_to=["wandb"]))  # all cached and logged: no second run per cell
    assert len(list(out.glob("wandb/offline-run-*"))) == 2
    # Offline sends nothing: W&B's usage telemetry (OpenTelemetry export threads) never started.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("Otel")]


def test_wandb_online_without_a_key_is_refused_before_anything_runs(tiny, tmp_path, wandb_offline, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(UsageError, match=r"^--log-to wandb: WANDB_MODE=online but no W&B API key is configured; "
                                         r"run `wandb login` or set WANDB_API_KEY"):
        plan_run(settings(tmp_path, log_to=["wandb"]), load_catalog())
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("WANDB_API_KEY", "0" * 86)  # a key (not checked with the server): the run may start
    plan_run(settings(tmp_path, log_to=["wandb"]), load_catalog())


def trackio_read(store: Path, project: str) -> dict:
    """Every run of a trackio project as {name: {"config", "metrics": {metric: [(step, value)]}}}, read in a
    child process by trackio's own API (it fixes its store's folder when first imported)."""
    code = """
import json, sys
import trackio
from trackio.sqlite_storage import SQLiteStorage
project = sys.argv[1]
runs = {}
for run in trackio.Api().runs(project):
    metrics = {}
    for row in SQLiteStorage.get_logs(project, run.name):
        for key, value in row.items():
            if key not in ("step", "timestamp"):
                metrics.setdefault(key, []).append((row["step"], value))
    runs[run.name] = {"config": run.config, "metrics": metrics}
print(json.dumps({"projects": SQLiteStorage.get_projects(), "runs": runs}))
"""
    done = subprocess.run([sys.executable, "-c", code, project], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TRACKIO_DIR": str(store)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_trackio_store_reads_back_with_trackios_api(tiny, tmp_path, monkeypatch):
    pytest.importorskip("trackio", reason="trackio is not in the test extra (pip install 'tuning-bench[trackio]')")
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    data, view = run(settings(tmp_path, log_to=["trackio"]))
    assert view.warnings == []
    out = tmp_path / "run"
    project = f"tbench-{tracking.run_label(out)}"
    read = trackio_read(out / "trackio", project)
    assert read["projects"] == [project]  # one project per tbench run, in the run's folder
    assert sorted(read["runs"]) == ["tiny-gen/lora/seed 0", "tiny-gen/zero-shot/seed 0"]
    lora, record = read["runs"]["tiny-gen/lora/seed 0"], cell_of(data, "lora")
    assert lora["config"]["method_config.r"] == 8 and lora["config"]["tbench.cell_key"] == record["key"]
    assert lora["config"]["_Group"] == "tiny-gen/lora"
    metrics = lora["metrics"]
    assert [tuple(p) for p in metrics["train/loss"]] == \
        [(s, pytest.approx(v)) for s, v in enumerate(record["curves"]["train_loss"], 1)]
    assert [s for s, _ in metrics["train/learning_rate"]] == [1, 2, 3, 4]
    assert [tuple(p) for p in metrics["validation/loss"]] == [(s, pytest.approx(v)) for s, v in record["curves"]["val_loss"]]
    assert metrics["quality/rouge_l"] == [[4, pytest.approx(record["quality"]["rouge_l"])]]
    assert metrics["quality/rouge_l_ci95_low"][0][1] <= metrics["quality/rouge_l_ci95_high"][0][1]
    assert metrics["cost/trainable_params"] == [[4, record["measurements"]["trainable_params"]]]
    assert "train/loss" not in read["runs"]["tiny-gen/zero-shot/seed 0"]["metrics"]
    run(settings(tmp_path, log_to=["trackio"]))  # all cached and logged: no second run per cell
    assert len(trackio_read(out / "trackio", project)["runs"]) == 2


def test_a_trackio_write_that_fails_is_a_warning_not_a_cell_marked_logged(tiny, tmp_path, monkeypatch):
    pytest.importorskip("trackio", reason="trackio is not in the test extra (pip install 'tuning-bench[trackio]')")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "a-file" / "store"))  # TRACKIO_DIR is used, and cannot be made
    data, view = run(settings(tmp_path, methods=["zero-shot"], log_to=["trackio"]))
    assert data["cells"][0]["status"] == "ok" and len(view.warnings) == 1
    assert view.warnings[0].startswith("--log-to trackio: could not log tiny-gen/zero-shot/seed 0 (RuntimeError: ")
    assert "Not a directory" in view.warnings[0]  # trackio's own reason, which trackio itself only warns about
    ledger = tmp_path / "run" / tracking.LEDGER
    assert not ledger.exists() or all(not keys for keys in json.loads(ledger.read_text()).values())
