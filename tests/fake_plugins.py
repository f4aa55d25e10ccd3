"""Test-only methods, registered by the ``tiny`` fixture (and, by module name, in cell processes)."""

from __future__ import annotations

import os
import signal
import time

import torch

from tuning_bench import Method, ModelKind, Option, hookimpl
from tuning_bench.api.method import learning_rate


class HeadOnly(Method):
    """Trains the output embedding/head plus a large extra parameter, so training memory is visible."""

    name = "fake-head"
    description = "test: train the LM head and a 4M-float extra parameter"
    options = (learning_rate(1e-2, "test"),)

    def adapt(self, loaded, task, config):
        model = loaded.model
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(True)
        extra = torch.nn.Parameter(torch.zeros(4_000_000))
        model.register_parameter("tbench_test_extra", extra)
        model.get_output_embeddings().register_forward_hook(lambda module, inputs, output: output + 0 * extra.mean())
        return model


class NanLoss(Method):
    name = "fake-nan"
    description = "test: makes the loss NaN after a few steps"
    options = (learning_rate(1e-3, "test"), Option("after", int, 2, "steps before NaN", minimum=0))

    def adapt(self, loaded, task, config):
        model = loaded.model
        calls = {"n": 0}

        def poison(module, inputs, output):
            calls["n"] += 1
            return output * float("nan") if calls["n"] > config["after"] else output

        model.get_output_embeddings().register_forward_hook(poison)
        return model


class Crash(Method):
    name = "fake-crash"
    description = "test: raises while adapting"
    options = (learning_rate(1e-3, "test"),)

    def adapt(self, loaded, task, config):
        raise RuntimeError("deliberate failure in adapt")


class Killed(Method):
    """Kills its own process, as the out-of-memory killer would."""

    name = "fake-killed"
    description = "test: the cell process is killed with SIGKILL"
    options = (learning_rate(1e-3, "test"),)

    def adapt(self, loaded, task, config):
        os.kill(os.getpid(), signal.SIGKILL)


class Slow(Method):
    name = "fake-slow"
    description = "test: sleeps in adapt so a run can be interrupted"
    trains = False
    model_kinds = frozenset({ModelKind.CAUSAL_LM})
    options = (Option("seconds", float, 30.0, "sleep", minimum=0.0),)

    def adapt(self, loaded, task, config):
        time.sleep(config["seconds"])
        return loaded.model




class CudaOOM(Method):
    name = "fake-oom"
    description = "test: raises torch's CUDA out-of-memory error"
    options = (learning_rate(1e-3, "test"),)

    def adapt(self, loaded, task, config):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@hookimpl
def register_methods(register):
    for method in (HeadOnly, NanLoss, Crash, Killed, Slow, CudaOOM):
        register(method)


def answer_length_ratio(prediction: str, reference: str) -> float:
    """test metric: prediction words over reference words."""
    return len(prediction.split()) / max(1, len(reference.split()))


@hookimpl
def register_metrics(register):
    register("fake_length_ratio", answer_length_ratio, higher_is_better=False)
    register("fake_corpus_count", lambda predictions, references: float(len(predictions)), per_example=False)
