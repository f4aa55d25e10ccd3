"""Bad input gets one clear line and exit code 2 before anything runs; security rules hold in the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO

from tuning_bench.api.errors import UsageError


def _invoke(cli_runner, *args):
    from tuning_bench.cli.main import cli

    return cli_runner.invoke(cli, list(args))


def _one_error_line(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("methods: [lora\nsteps: 3\n", "invalid YAML at line"),
        ("methds: [lora]\n", "key 'methds': Unknown setting 'methds'. Did you mean: methods"),
        ("steps: many\n", "key 'steps': steps must be an integer (got 'many')"),
        ("steps: 0\n", "steps must be at least 1 (got 0)"),
        ("seeds: [0, -1]\n", "seeds must be a non-empty list of integers from 0 to 4294967295"),
        ("seeds: [1, 1]\n", "seed 1 given more than once"),
        ("steps: .nan\n", "steps must be an integer (got nan)"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level"),
        ("options: {prompt: {num_virtual_tokens: 0}}\n", "prompt.num_virtual_tokens must be at least 1"),
        ("precision: fp8\n", "precision must be one of auto, fp32, bf16"),
    ],
)
def test_bad_suite_config_is_one_line_naming_file_and_key(cli_runner, tmp_path, content, expected):
    suite = tmp_path / "suite.yaml"
    suite.write_text(content)
    line = _one_error_line(_invoke(cli_runner, "run", "--config", str(suite), "--out", str(tmp_path / "out")))
    assert expected in line
    assert "suite.yaml" in line or "--set" in line
    assert not (tmp_path / "out").exists()


def test_missing_suite_file(cli_runner, tmp_path):
    line = _one_error_line(_invoke(cli_runner, "run", "--config", str(tmp_path / "nope.yaml")))
    assert "nope.yaml: no such suite config file" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "0"], "--steps must be at least 1 (got 0)"),
        (["--seeds", "0,x"], "--seeds: expected comma-separated integers from 0 to 4294967295, e.g. 0,1,2 (got '0,x')"),
        (["--seeds", "-1"], "--seeds must be a non-empty list of integers from 0 to 4294967295"),
        (["--seeds", "4294967296"], "--seeds must be a non-empty list of integers from 0 to 4294967295"),
        (["--seeds", "0,0"], "--seeds: seed 0 given more than once; give distinct seeds"),
        (["--set", "lora.dropout=nan"], "lora.dropout must be a finite number, got nan"),
        (["--set", "lora.learning_rate=inf"], "lora.learning_rate must be a finite number, got inf"),
        (["--set", "lora.r=99999999999999999999999"], "lora.r must be at most"),
        (["--set", "prompt.num_virtual_tokens=0"], "prompt.num_virtual_tokens must be at least 1, got 0"),
        (["--set", "lora.r=two"], "lora.r expected integer, got 'two'"),
        (["--set", "prompt"], "expected METHOD.OPTION=VALUE"),
        (["--set", "nomethod.x=1"], "Unknown method 'nomethod'"),
        (["--methods", "prompt", "--set", "lora.r=4"], "method 'lora' is not part of this run"),
        (["--device", "tpu"], "--device tpu: expected auto, cpu, cuda or cuda:N"),
        (["--methods", ","], "--methods: expected a comma-separated list of names"),
    ],
)
def test_bad_run_options_fail_before_any_training(cli_runner, tmp_path, args, expected):
    line = _one_error_line(_invoke(cli_runner, "run", *args, "--out", str(tmp_path / "out")))
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_cuda_requested_without_a_gpu_is_refused(cli_runner, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    line = _one_error_line(_invoke(cli_runner, "run", "--device", "cuda", "--out", str(tmp_path / "out")))
    assert "no CUDA device is available here; use --device cpu or auto" in line


@pytest.mark.parametrize(
    ("yaml_text", "data", "expected"),
    [
        ("name: t\nkind: classification\ninstruction: x\ninput_template: '{text}'\ntarget_template: '{label}'\n"
         "labels: [a, b]\nmetrics: [accuracy]\ndata: missing.jsonl\n", None, "missing.jsonl"),
        ("name: t\nkind: classification\ninstruction: x\ninput_template: '{text}'\ntarget_template: '{label}'\n"
         "labels: [a, b]\nmetrics: [accuracy]\ndata: d.jsonl\n", "", "d.jsonl"),
        ("name: t\nkind: classification\ninstruction: x\ninput_template: '{text}'\ntarget_template: '{label}'\n"
         "labels: [a, b]\nmetrics: [accuracy]\ndata: d.jsonl\n", '{"text": "x", "label": "a"}\n{oops\n', "line 2"),
        ("name: t\nkind: classification\ninstruction: x\ninput_template: '{text}'\ntarget_template: '{label}'\n"
         "labels: [a, b]\nmetrics: [accuracy]\ndata: d.jsonl\n", '{"text": "x", "label": "c"}\n', "'c'"),
    ],
)
def test_bad_task_data_is_one_line_naming_the_file(cli_runner, tmp_path, yaml_text, data, expected):
    task_file = tmp_path / "task.yaml"
    task_file.write_text(yaml_text)
    if data is not None:
        (tmp_path / "d.jsonl").write_text(data)
    line = _one_error_line(_invoke(cli_runner, "run", "--task-file", str(task_file), "--out", str(tmp_path / "out")))
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_model_that_needs_remote_code_is_refused_without_the_flag(tmp_path):
    folder = tmp_path / "custom-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tbench_custom_arch",
        "architectures": ["CustomForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig",
                     "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"},
    }))
    (folder / "configuration_custom.py").write_text("raise RuntimeError('remote code must not run')\n")
    from tuning_bench.models.hf import PretrainedSource

    with pytest.raises(UsageError, match="needs custom code from its repository.*pass --trust-remote-code"):
        PretrainedSource(str(folder)).kind


def test_remote_code_refusal_in_cli(cli_runner, tmp_path):
    folder = tmp_path / "custom-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "tbench_custom_arch",
                                                    "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    line = _one_error_line(_invoke(cli_runner, "run", "--model", str(folder), "--out", str(tmp_path / "out")))
    assert "--trust-remote-code" in line


# --- security rules, checked in the source so that a regression fails here ------------------------

SOURCE_DIRS = ("tuning_bench", "plugins", "tasks", "examples")
FORBIDDEN = [
    (re.compile(r"\bpickle\b|\bdill\b|\bcloudpickle\b"), "pickle-based serialisation"),
    (re.compile(r"torch\.load\("), "torch.load (pickle)"),
    (re.compile(r"yaml\.(unsafe_)?load\(|yaml\.full_load|Loader=yaml\.(Unsafe|Full)?Loader"), "yaml.load without safe_load"),
    (re.compile(r"(?<![\w.])(eval|exec)\("), "eval/exec"),
    (re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\("), "a shell"),
    (re.compile(r"trust_remote_code\s*=\s*True"), "trust_remote_code enabled in code"),
    (re.compile(r"use_safetensors\s*=\s*False|safe_serialization\s*=\s*False"), "non-safetensors weights"),
]


def _python_sources():
    for folder in SOURCE_DIRS:
        yield from (REPO / folder).rglob("*.py")


@pytest.mark.parametrize(("pattern", "what"), FORBIDDEN, ids=[w for _, w in FORBIDDEN])
def test_no_unsafe_loading_or_execution_in_the_code(pattern, what):
    offenders = []
    for path in _python_sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, f"{what}:\n" + "\n".join(offenders)


def test_the_security_scan_would_catch_a_regression(tmp_path):
    sample = "data = torch.load(path)\nconfig = yaml.load(text, Loader=yaml.Loader)\nsubprocess.run(cmd, shell=True)\n"
    hits = {what for pattern, what in FORBIDDEN for line in sample.splitlines() if pattern.search(line)}
    assert {"torch.load (pickle)", "yaml.load without safe_load", "a shell"} <= hits


def test_yaml_is_only_read_with_safe_load():
    uses = [p for p in _python_sources() if "yaml." in p.read_text(encoding="utf-8")]
    assert uses, "the suite and task files are YAML"
    for path in uses:
        calls = set(re.findall(r"yaml\.(\w+)\(", path.read_text(encoding="utf-8")))
        assert calls <= {"safe_load", "safe_dump"}, (path, calls)


def test_the_reliability_doc_lists_tests_that_exist():
    doc = (REPO / "docs" / "reliability.md").read_text()
    names = set(re.findall(r"`(test_\w+)`", doc))
    assert len(names) >= 20
    defined = set()
    for path in (REPO / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    assert names <= defined, sorted(names - defined)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seeds", "[/]"], "(got '[/]')"),
        (["--methods", "[bold]lora"], "Unknown method '[bold]lora'"),
        (["--set", "lora.[red]x=1"], "Unknown option '[red]x'"),
        (["--task-file", "[b]missing.yaml"], "[b]missing.yaml"),
    ],
)
def test_user_text_is_never_read_as_markup(cli_runner, tmp_path, args, expected):
    line = _one_error_line(_invoke(cli_runner, "run", *args, "--out", str(tmp_path / "out")))
    assert expected in line


def test_fix_hints_keep_their_bracketed_examples(capsys):
    from tuning_bench.cli.console import warn

    warn("labels: use a list, e.g. [positive, negative]")
    assert "[positive, negative]" in capsys.readouterr().err
