"""Training budgets: --epochs resolved to steps, early stopping that keeps and evaluates the best state."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from tuning_bench.api.errors import UsageError
from tuning_bench.api.kinds import ModelKind
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.engine.data import Encoded, epoch_steps, length_bucketed_batches
from tuning_bench.engine.trainer import Feeder, TrainConfig, Trainer, mean_loss, train
from tuning_bench.host.plugins import load_catalog
from tuning_bench.report.tables import COST_COLUMNS, build_tasks, display_value
from tuning_bench.run.runner import plan_run
from tuning_bench.run.settings import RunSettings, build_settings, load_suite
from tuning_bench.testing import tiny_llama, tiny_tokenizer

# Train and validation share prompts but not targets: fitting the training targets first lowers the
# validation loss (common tokens, lengths), then raises it. At lr 3e-3, validated every 2 steps, the
# validation loss falls until step 16 and rises after it (checked in the first test).
TRAIN = [Encoded([5 + i, 6 + i, 7], [20 + i, 21 + i]) for i in range(16)]
VALIDATION = [Encoded([5 + i, 6 + i, 7], [40 + i, 41 + i]) for i in range(8)]


def _setup():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)  # seeded inside: the same weights every call
    return model, Feeder(ModelKind.CAUSAL_LM, tokenizer.pad_token_id, torch.device("cpu"))


def _config(**overrides) -> TrainConfig:
    values = dict(steps=40, batch_size=4, learning_rate=3e-3, seed=0, val_every=2)
    values.update(overrides)
    return TrainConfig(**values)


def _trainable(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def _train_with_snapshots(config: TrainConfig):
    """Train, keeping a copy of the trainable tensors after every step (an independent record of each state)."""
    model, feeder = _setup()
    snapshots = {}
    log = train(model, TRAIN, VALIDATION, feeder, config, on_step=lambda step, loss: snapshots.update({step: _trainable(model)}))
    return model, feeder, log, snapshots


def test_early_stopping_restores_and_evaluates_the_best_state():
    model, feeder, log, snapshots = _train_with_snapshots(_config(patience=3))
    steps = [s for s, _ in log.val_loss]
    values = [v for _, v in log.val_loss]
    best_index = values.index(min(values))
    assert 0 < best_index < len(values) - 1, "the validation loss must fall, then rise, for this test to mean anything"
    assert log.best_step == steps[best_index] and log.best_val == min(values)
    assert log.stopped_early and log.state_step == log.best_step
    # the model now holds exactly the tensors it had after the best step, not those of the last step
    now = _trainable(model)
    assert all(torch.equal(a, b) for a, b in zip(now, snapshots[log.best_step]))
    assert not all(torch.equal(a, b) for a, b in zip(now, snapshots[len(log.train_loss)]))
    # and evaluating it gives the best validation loss recorded
    assert math.isclose(mean_loss(model, VALIDATION, feeder, 4), log.best_val, rel_tol=1e-6)
    assert log.seconds_to_best == pytest.approx(sum(log.step_seconds[: log.best_step]))


def test_patience_stops_after_that_many_validations_without_improvement():
    _, _, log, _ = _train_with_snapshots(_config(patience=3))
    assert len(log.train_loss) == log.best_step + 3 * 2 < 40  # three validations, two steps apart, after the best
    # a min_delta no drop can reach: the first validation stays the best, training stops two validations later
    _, _, log, _ = _train_with_snapshots(_config(patience=2, min_delta=100.0))
    assert log.best_step == 2 and log.stopped_early and len(log.train_loss) == 6
    assert [s for s, _ in log.val_loss] == [2, 4, 6]


def test_patience_that_is_never_exhausted_trains_to_the_end_and_still_evaluates_the_best():
    model, _, log, snapshots = _train_with_snapshots(_config(patience=100))
    assert not log.stopped_early and len(log.train_loss) == 40
    assert log.state_step == log.best_step < 40
    assert all(torch.equal(a, b) for a, b in zip(_trainable(model), snapshots[log.best_step]))


def test_without_early_stopping_training_is_the_plain_loop():
    """Patience 0: the same losses and final state as stepping the Trainer by hand (the loop before early
    stopping existed); the best step only describes the curve, and the model keeps its final state."""
    model, feeder, log, snapshots = _train_with_snapshots(_config())
    reference, _ = _setup()
    torch.manual_seed(0)
    trainer = Trainer(reference, feeder, _config())
    batches = length_bucketed_batches([e.length for e in TRAIN], 4, 0)
    losses = [trainer.step([TRAIN[i] for i in next(batches)]) for _ in range(40)]
    assert losses == log.train_loss
    assert all(torch.equal(a, b) for a, b in zip(_trainable(model), _trainable(reference)))
    assert not log.stopped_early and log.state_step == 40 and log.best_step < 40
    # keeping best states (patience that never runs out) does not change the training itself
    _, _, kept, _ = _train_with_snapshots(_config(patience=100))
    assert kept.train_loss == log.train_loss and kept.val_loss == log.val_loss


def test_an_epoch_is_the_full_batches_the_sampler_yields_before_reshuffling():
    lengths = [i % 7 + 3 for i in range(50)]
    per_epoch = epoch_steps(1, 50, 8)
    assert per_epoch == 6 and epoch_steps(3, 50, 8) == 18
    batches = length_bucketed_batches(lengths, 8, seed=0)
    first = [i for _ in range(per_epoch) for i in next(batches)]
    assert len(first) == len(set(first)) == 48  # every batch of the epoch holds new examples
    assert set(next(batches)) & set(first)  # the next batch starts the second pass
    assert epoch_steps(2, 3, 8) == 2  # fewer examples than a batch: one (partial) batch per epoch


def test_epochs_resolve_to_steps_per_task_in_the_plan(tiny, tmp_path):
    settings = RunSettings(methods=["lora"], tasks=["tiny-gen", "tiny-cls"], model="tiny-llama", epochs=2,
                           batch_size=8, out=str(tmp_path / "run"), executor="in-process")
    plan = plan_run(settings, load_catalog())
    steps = {job.spec.task: job.spec.steps for job in plan.jobs}
    assert steps == {"tiny-gen": 2 * (48 // 8), "tiny-cls": 2 * (20 // 8)}
    assert {job.spec.task: job.spec.val_every for job in plan.jobs} == {"tiny-gen": 12 // 4, "tiny-cls": 4 // 4}  # four times
    stopping = plan_run(RunSettings(**{**settings.__dict__, "patience": 2}), load_catalog())
    assert {job.spec.task: job.spec.val_every for job in stopping.jobs} == {"tiny-gen": 1, "tiny-cls": 1}


def test_steps_and_epochs_in_one_place_are_refused_and_a_later_place_wins(tmp_path):
    with pytest.raises(UsageError, match="sets both steps and epochs; give one"):
        build_settings(False, {}, {"steps": 10, "epochs": 2})
    suite = tmp_path / "suite.yaml"
    suite.write_text("epochs: 3\n")
    assert build_settings(False, load_suite(suite), {"steps": 10}).epochs == 0  # --steps replaces the file's epochs
    settings = build_settings(True, load_suite(suite), {"steps": None})  # the file's epochs replace --quick's steps
    assert settings.epochs == 3
    with pytest.raises(UsageError, match="patience.*needs validation examples"):
        build_settings(False, {}, {"patience": 2, "val_examples": 0})
    suite.write_text("min_delta: -1\n")
    with pytest.raises(UsageError, match="min_delta must be at least 0"):
        load_suite(suite)


def test_cell_records_the_budget_and_evaluates_the_best_state(tiny, tmp_path):
    # min_delta out of reach: the first validation (step 2) stays the best; stop two validations later
    spec = CellSpec(task="tiny-gen", method="lora", seed=0, model="tiny-llama", method_config={}, steps=20,
                    batch_size=4, val_examples=4, val_every=2, eval_batch_size=4, samples=1, patience=2,
                    min_delta=100.0, latency=False)
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "ok", record["error"]
    m = record["measurements"]
    assert (m["steps"], m["step_budget"], m["best_step"], m["evaluated_step"]) == (6, 20, 2, 2)
    assert m["early_stopping"] and m["stopped_early"]
    assert record["curves"]["val_loss"][0] == [2, m["best_val_loss"]] and len(record["curves"]["val_loss"]) == 3
    assert m["final_val_loss"] == m["best_val_loss"]  # the evaluated state's validation loss is the best one
    assert 0 < m["seconds_to_best"] < m["train_seconds"]


def test_steps_and_time_to_best_shown_as_one_compact_column():
    data = json.loads((Path(__file__).parent / "data" / "gen-results.json").read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    for cell in data["cells"]:
        if cell["status"] == "ok" and cell["measurements"].get("steps"):
            cell["measurements"].update({"best_step": 4 + cell["seed"] * 2, "seconds_to_best": 2.0 + cell["seed"]})
    column = next(c for c in COST_COLUMNS if c.key == "seconds_to_best")
    rows = [row for view in build_tasks(data) for row in view.rows]
    trained = [row for row in rows if row.trains]
    assert trained and {display_value(row, column) for row in trained} == {"5 / 2.5 s"}  # means over seeds 0 and 1
    assert all(display_value(row, column) == "—" for row in rows if not row.trains)
