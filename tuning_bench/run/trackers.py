"""The tracker back ends of ``--log-to``: each writes one ``CellLog`` as one tracker run.

Imported only when a run names a tracker, so the packages stay optional extras
(``pip install 'tuning-bench[tensorboard]'``, ``'tuning-bench[mlflow]'``). Both write local stores
under the run's output folder, offline; ``MLFLOW_TRACKING_URI`` points MLflow elsewhere (a server).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tuning_bench.run.tracking import CellLog


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
