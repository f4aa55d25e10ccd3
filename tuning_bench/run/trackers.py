"""The tracker back ends of ``--log-to``: each writes one ``CellLog`` as one tracker run.

Imported only when a run names a tracker, so the packages stay optional extras
(``pip install 'tuning-bench[tensorboard]'``, ``'tuning-bench[mlflow]'``, ``'tuning-bench[wandb]'``,
``'tuning-bench[trackio]'``). All write local stores under the run's output folder, offline, unless the
tool's own variables send them elsewhere: ``MLFLOW_TRACKING_URI``; ``WANDB_MODE``, ``WANDB_DIR``,
``WANDB_PROJECT``; ``TRACKIO_DIR`` (and trackio's Space or server variables).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tuning_bench.run.tracking import CellLog, run_label


def logged_steps(log: CellLog) -> list[tuple[int, dict[str, float]]]:
    """The cell's values as one row per step, in step order, for trackers whose steps only go forward
    (W&B drops a value logged at a step below the last). The final figures join the last row: normally
    the cell's last step, where TensorBoard and MLflow put them too."""
    rows: dict[int, dict[str, float]] = {}
    for tag, points in log.series.items():
        for step, value in points:
            rows.setdefault(step, {})[tag] = value
    if log.final:
        rows.setdefault(max([log.final_step, *rows]), {}).update(log.final)
    return sorted(rows.items())


def _config(log: CellLog) -> dict[str, str | int | float | bool]:
    """Parameters and tags as one config, for trackers without separate tags."""
    return {**log.params, **log.tags}


class TensorBoardTracker:
    """Event files under ``OUT/tensorboard/<task>/<method>/seed-N``: one TensorBoard run per cell, the
    output folder groups the run (``tensorboard --logdir OUT/tensorboard``). The config is written as
    hyperparameters (the HPARAMS tab), against the final quality metrics."""

    def __init__(self, out_dir: Path):
        self.root = out_dir / "tensorboard"
        self.destination = str(self.root.resolve())

    def log(self, log: CellLog) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        folder = self.root / log.folder
        if folder.exists():
            shutil.rmtree(folder)  # the cell ran again: its new run replaces the old, not mixes with it
        writer = SummaryWriter(log_dir=str(folder))
        try:
            for tag, points in log.series.items():
                for step, value in points:
                    writer.add_scalar(tag, value, step)
            for tag, value in log.final.items():
                writer.add_scalar(tag, value, log.final_step)
            quality = {tag: value for tag, value in log.final.items() if tag.startswith("quality/")}
            params = {**log.params, "status": log.status}
            # Written into this run's own folder (SummaryWriter.add_hparams would start another run).
            for summary in hparams(params, quality):
                writer.file_writer.add_summary(summary)
        finally:
            writer.close()


# MLflow's limits per log_batch call (mlflow.utils.validation): 1000 metrics, 100 params, 1000 entities.
_BATCH_METRICS = 1000
_BATCH_PARAMS = 100
_PARAM_CHARS = 6000


def default_mlflow_uri(out_dir: Path) -> str:
    """The MLflow store a run writes when ``MLFLOW_TRACKING_URI`` is not set: a SQLite file in the run's folder."""
    return "sqlite:///" + str((out_dir / "mlflow.db").resolve())


class MlflowTracker:
    """One MLflow run per cell, in one experiment per tbench run (named after its output folder), with
    the cell's config as parameters, its curves as stepped metrics and tags naming task, method, seed,
    status and cache key. ``mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db`` shows them."""

    def __init__(self, out_dir: Path):
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or default_mlflow_uri(out_dir)
        self.experiment = f"tbench {out_dir.resolve()}"
        self.destination = f"{self.uri} {self.experiment}"
        self._client: Any = None
        self._experiment_id: str | None = None

    def _experiment(self) -> tuple[Any, str]:
        if self._client is None:
            import logging

            from mlflow.tracking import MlflowClient

            # Creating a store logs its table set-up at INFO; it would cut through the run's live view.
            for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
                logging.getLogger(name).setLevel(logging.WARNING)

            client = MlflowClient(tracking_uri=self.uri)
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                experiment_id = client.create_experiment(self.experiment)
            else:
                experiment_id = found.experiment_id
                if found.lifecycle_stage == "deleted":
                    client.restore_experiment(experiment_id)
            self._client, self._experiment_id = client, experiment_id
        return self._client, self._experiment_id

    def log(self, log: CellLog) -> None:
        from mlflow.entities import Metric, Param

        client, experiment_id = self._experiment()
        run_id = client.create_run(experiment_id, run_name=log.name, tags=log.tags).info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(tag, value, now, step) for tag, points in log.series.items() for step, value in points]
        metrics += [Metric(tag, value, now, log.final_step) for tag, value in log.final.items()]
        params = [Param(name, str(value)[:_PARAM_CHARS]) for name, value in log.params.items()]
        try:
            for start in range(0, len(params), _BATCH_PARAMS):
                client.log_batch(run_id, params=params[start:start + _BATCH_PARAMS])
            for start in range(0, len(metrics), _BATCH_METRICS):
                client.log_batch(run_id, metrics=metrics[start:start + _BATCH_METRICS])
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED" if log.status != "failed" else "FAILED")


# --- Weights & Biases ---------------------------------------------------------------------------

WANDB_DEFAULT_PROJECT = "tbench"
_WANDB_LOCAL_MODES = ("offline", "dryrun", "disabled")


def wandb_problem() -> str | None:
    """Why W&B cannot log, checked before a run starts: asked to log online (``WANDB_MODE``) with no
    credentials. tbench never lets W&B prompt for a key: a prompt would stop an unattended run."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if not mode or mode in _WANDB_LOCAL_MODES:
        return None
    import wandb

    with contextlib.redirect_stderr(io.StringIO()):  # its "key is configured" notes would cut into the run's view
        # This process's W&B in the mode asked for (an earlier offline run may have set it offline).
        wandb.setup(settings=wandb.Settings(mode=mode))
        logged_in = wandb.login(prompt=False, verify=False)
    if logged_in:
        return None
    return (f"WANDB_MODE={mode} but no W&B API key is configured; run `wandb login` or set WANDB_API_KEY, "
            "or unset WANDB_MODE to log offline into the output folder")


class WandbTracker:
    """One W&B run per cell in project ``tbench`` (or ``WANDB_PROJECT``), grouped per tbench run (``group``
    = ``run_label``), named like the cell, job type = the method. Offline by default, into
    ``OUT/wandb/offline-run-*``, which ``wandb sync OUT/wandb/offline-run-*`` uploads later; with
    ``WANDB_MODE`` set, W&B's own choice of mode (online needs ``wandb login``), and ``WANDB_DIR`` moves the
    folder. Config = the cell's parameters and tags; per step the curves; the final figures at the last step
    (and so in the run's summary)."""

    def __init__(self, out_dir: Path):
        self.mode = None if os.environ.get("WANDB_MODE") else "offline"  # None: W&B reads WANDB_MODE itself
        self.dir = None if os.environ.get("WANDB_DIR") else out_dir.resolve()
        self.project = os.environ.get("WANDB_PROJECT") or WANDB_DEFAULT_PROJECT
        self.group = run_label(out_dir)
        where = os.environ.get("WANDB_DIR") or str(self.dir)
        self.destination = (f"mode={os.environ.get('WANDB_MODE') or 'offline'} dir={where} "
                            f"entity={os.environ.get('WANDB_ENTITY', '')} project={self.project} group={self.group}")

    def log(self, log: CellLog) -> None:
        import wandb

        if self.mode:
            # Offline for the whole process, not only for the run: W&B's own usage telemetry follows the
            # process-wide mode, and an offline run must not send anything.
            wandb.setup(settings=wandb.Settings(mode=self.mode))
        # console="off": W&B would otherwise wrap this process's stdout, which the run's live view writes to.
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True,
                                  save_code=False, x_disable_machine_info=True)
        tags = [log.tags["tbench.task"], log.tags["tbench.method"], log.status]
        run = wandb.init(mode=self.mode, dir=str(self.dir) if self.dir else None, project=self.project,
                         group=self.group, name=log.name, job_type=log.tags["tbench.method"][:64],
                         tags=[tag[:64] for tag in tags], config=_config(log), reinit="create_new",
                         settings=settings)
        try:
            for step, values in logged_steps(log):
                run.log(values, step=step)
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish(exit_code=1 if log.status == "failed" else 0)


# --- trackio --------------------------------------------------------------------------------------

class TrackioTracker:
    """One trackio run per cell, in one project per tbench run (``tbench-`` + ``run_label``), grouped by
    task and method (the seeds of one row), config = the cell's parameters and tags. The store is
    ``OUT/trackio`` (``TRACKIO_DIR=OUT/trackio trackio show``), or ``TRACKIO_DIR`` where that is set.

    Each cell is written by a short child process (``trackio_child``): trackio fixes its store's folder
    when it is first imported, so a store per output folder cannot be chosen in a process that already
    imported it, and its threads and messages stay out of the run's process."""

    def __init__(self, out_dir: Path):
        self.dir = os.environ.get("TRACKIO_DIR") or str((out_dir / "trackio").resolve())
        self.project = f"tbench-{run_label(out_dir)}"
        self.destination = f"{self.dir} {self.project}"

    def log(self, log: CellLog) -> None:
        payload = {"project": self.project, "name": log.name,
                   "group": f"{log.tags['tbench.task']}/{log.tags['tbench.method']}",
                   "config": _config(log), "steps": logged_steps(log)}
        # The child imports tuning_bench from where this process did, installed or not.
        source = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "TRACKIO_DIR": self.dir,
               "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-m", "tuning_bench.run.trackio_child"], input=json.dumps(payload),
                              capture_output=True, text=True, env=env, timeout=300)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"the trackio writer exited with code {done.returncode}")
