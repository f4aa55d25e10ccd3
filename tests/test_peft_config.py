"""The `peft` method: any PEFT configuration, from an adapter_config.json or inline fields, on the tiny models."""

from __future__ import annotations

import json

import pytest
from conftest import TESTS, run_tbench

from tuning_bench.api.errors import UsageError
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.host.plugins import load_catalog
from tuning_bench.testing import check_method

PEFT_DATA = TESTS / "data" / "peft"
VERA_FILE = PEFT_DATA / "vera-llama-3.2-3B-default.json"  # PEFT's method_comparison files, unchanged
LOHA_FILE = PEFT_DATA / "loha-llama-3.2-3B-rank32.json"

# Fields as a saved adapter_config.json has them, beside the ones tbench sets itself (ignored).
SAVED_EXTRAS = {"base_model_name_or_path": "meta-llama/Llama-3.2-3B", "revision": "main", "task_type": "SEQ_2_SEQ_LM",
                "inference_mode": True, "auto_mapping": None}
# (id, fields, learning rate, the prefix of the tensors the tuner adds). VeRA's projections are kept out of
# the saved state (save_projection false: PEFT regenerates them from their seed), so it saves what it trains.
CONFIGS = [
    ("vera", {"peft_type": "VERA", "r": 16, "save_projection": False}, 5e-2, "vera_lambda"),
    ("loha", {"peft_type": "LOHA", "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}, 1e-2, "hada_"),
    ("ia3", {"peft_type": "IA3"}, 3e-2, "ia3_"),
]


def _peft():
    return load_catalog(["tuning_bench.testing"]).methods.get("peft")


def _as_text(fields):
    """The fields as --set gives them: text, lists as comma lists."""
    return {k: ",".join(v) if isinstance(v, list) else json.dumps(v) if not isinstance(v, str) else v
            for k, v in fields.items()}


def _write(tmp_path, fields, name="adapter_config.json"):
    path = tmp_path / name
    path.write_text(json.dumps({**SAVED_EXTRAS, **fields}))
    return path


@pytest.mark.parametrize("given", ["file", "inline"])
@pytest.mark.parametrize(("name", "fields", "rate", "prefix"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_peft_config_keeps_the_method_contract(tmp_path, given, name, fields, rate, prefix):
    options = {"config": str(_write(tmp_path, fields))} if given == "file" else _as_text(fields)
    report = check_method(_peft(), "tiny-llama", "tiny-gen", learning_rate=rate, options=options)
    assert report["state_kind"] == "peft-adapter"
    # the base model's own weights are bit-identical; what changed is the tuner's own tensors
    assert report["changed"] and all(prefix in changed for changed in report["changed"]), report["changed"][:5]
    assert report["guard"]["passed"] and report["guard"]["checked_prompts"] == 3


def test_a_peft_config_on_the_encoder_trains_a_copy_of_the_head():
    report = check_method(_peft(), "tiny-bert", "tiny-cls", learning_rate=3e-2, options={"peft_type": "IA3"})
    assert report["state_kind"] == "peft-adapter"
    assert any("modules_to_save" in name for name in report["changed"])  # PEFT's copy of the classifier
    assert not any("classifier" in name and "modules_to_save" not in name and "original_module" not in name
                   for name in report["changed"])


def test_a_method_comparison_file_runs_unchanged_and_resolves_to_its_content():
    peft = _peft()
    config = peft.resolve_config({"config": str(VERA_FILE)})
    saved = json.loads(VERA_FILE.read_text())
    assert config["peft_type"] == "VERA" and config["config"] is None  # the content is kept, not the path
    assert config["fields"]["r"] == 256 and config["fields"]["projection_prng_key"] == 0
    assert not {"base_model_name_or_path", "task_type", "inference_mode", "revision"} & set(config["fields"])
    assert set(config["fields"]) == set(saved) - {"base_model_name_or_path", "task_type", "inference_mode", "revision",
                                                   "auto_mapping", "peft_type"}
    assert peft.resolve_config(config) == config  # the cell process resolves the planned config to itself
    # inline fields override the file's
    assert peft.resolve_config({"config": str(VERA_FILE), "r": "8"})["fields"]["r"] == 8


def test_the_method_comparison_vera_file_trains_and_passes_the_guard(tiny, tmp_path):
    config = _peft().resolve_config({"config": str(VERA_FILE), "learning_rate": 5e-2})
    spec = CellSpec(task="tiny-gen", method="peft", seed=0, model="tiny-llama", method_config=config, steps=3,
                    batch_size=4, val_examples=2, eval_batch_size=8, eval_examples=4)
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "ok", record["error"]
    assert record["guard"]["passed"] and record["measurements"]["trainable_params"] > 0
    assert (tmp_path / "cell" / "state" / "adapter_config.json").is_file()  # PEFT's adapter format
    saved = json.loads((tmp_path / "cell" / "state" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "VERA" and saved["r"] == 256 and saved["task_type"] == "CAUSAL_LM"


def test_inline_values_are_read_by_the_field_type(tmp_path):
    peft = _peft()
    fields = peft.resolve_config({"peft_type": "lora", "r": "4", "lora_dropout": "0.1", "use_rslora": "true",
                                  "target_modules": "q_proj,v_proj", "bias": "none",
                                  "layers_to_transform": "0,1", "init_lora_weights": "gaussian"})["fields"]
    assert fields == {"r": 4, "lora_dropout": 0.1, "use_rslora": True, "target_modules": ["q_proj", "v_proj"],
                      "bias": "none", "layers_to_transform": [0, 1], "init_lora_weights": "gaussian"}
    single = peft.resolve_config({"peft_type": "LORA", "target_modules": "q_proj"})["fields"]
    assert single["target_modules"] == ["q_proj"]  # a bare string would be a regular expression over full paths
    assert peft.resolve_config({"peft_type": "LORA", "target_modules": "all-linear"})["fields"]["target_modules"] == "all-linear"
    # a file's values are typed JSON already: a string there is PEFT's regular expression, kept as it is
    regex = _write(tmp_path, {"peft_type": "LORA", "target_modules": r".*\.(q|v)_proj"}, "regex.json")
    assert peft.resolve_config({"config": str(regex)})["fields"]["target_modules"] == r".*\.(q|v)_proj"


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"peft_type": "VERA", "rr": "8"}, ["Unknown field 'rr' of PEFT's VeraConfig", "Did you mean: r?", "projection_prng_key"]),
    ({"peft_type": "VERA", "r": "many"}, ["peft.r must be integer (VeraConfig.r)", '"many"']),
    ({"peft_type": "LOHA", "target_modules": "{\"a\": 1}"}, ["peft.target_modules must be", "list of string"]),
    ({"peft_type": "VERAA"}, ["Unknown PEFT type 'VERAA'", "Did you mean: VERA"]),
    ({}, ["peft needs a configuration", "--set peft.config="]),
    ({"peft_type": "LORA", "layers_pattern": "layers"}, ["PEFT refuses this LORA config", "layers_to_transform"]),
    ({"config": "/nonexistent/adapter_config.json"}, ["no such PEFT config file"]),
])
def test_mistakes_are_one_line_naming_the_field(overrides, expected):
    with pytest.raises(UsageError) as info:
        _peft().resolve_config(overrides)
    message = str(info.value)
    assert "\n" not in message and message.startswith("--set: ")
    for part in expected:
        assert part in message, message


def test_a_file_that_is_no_peft_config_is_refused(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        _peft().resolve_config({"config": str(broken)})
    unknown = _write(tmp_path, {"peft_type": "VERA", "vera_rank": 4}, "unknown.json")
    with pytest.raises(UsageError, match="Unknown field 'vera_rank' of PEFT's VeraConfig"):
        _peft().resolve_config({"config": str(unknown)})
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="not a PEFT adapter_config.json"):
        _peft().resolve_config({"config": str(tmp_path / "list.json")})


def test_a_tuner_peft_cannot_apply_is_not_applicable_with_peft_reason(tiny, tmp_path):
    config = _peft().resolve_config({"config": str(LOHA_FILE)})  # q_proj, v_proj: Llama names, not BERT's
    spec = CellSpec(task="tiny-cls", method="peft", seed=0, model="tiny-bert", method_config=config, steps=2,
                    eval_examples=4)
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "not_applicable"
    assert record["error"].startswith("PEFT cannot apply LOHA to this model: No modules were targeted")


def test_decoding_follows_the_tuner():
    peft = _peft()
    assert peft.decoding_for({"peft_type": "VERA"}) == "engine"
    assert peft.decoding_for({"peft_type": "PROMPT_TUNING"}) == "soft-prompt"
    assert peft.decoding_for({"peft_type": "PREFIX_TUNING"}) == "generate"


def test_peft_is_listed_with_options_defaults_and_sources(cli_runner):
    rows = json.loads(run_tbench(cli_runner, "methods", "--json").stdout)
    row = next(r for r in rows if r["name"] == "peft")
    options = {o["name"]: o for o in row["options"]}
    assert set(options) == {"config", "peft_type", "fields", "learning_rate"}
    assert options["learning_rate"]["default"] == 3e-3 and "sweep-lr-cpu" in options["learning_rate"]["source"]
    assert all(o["source"] for o in options.values()) and options["fields"]["type"] == "dict"


def _settings(tmp_path, **values):
    from tuning_bench.run.settings import RunSettings

    base = dict(tasks=["tiny-gen"], model="tiny-llama", steps=2, batch_size=4, eval_examples=3, val_examples=2,
                eval_batch_size=4, out=str(tmp_path / "run"), executor="in-process", keep="all", latency=False)
    return RunSettings(**(base | values))


def test_two_method_configs_run_as_two_named_methods(tiny, tmp_path):
    from tuning_bench.run.inference import load_trained
    from tuning_bench.run.runner import execute, plan_run

    vera = _write(tmp_path, {"peft_type": "VERA", "r": 8, "save_projection": False}, "vera.json")
    settings = _settings(tmp_path, methods=["zero-shot"], method_files={"vera-8": str(vera), "loha-32": str(LOHA_FILE)},
                         options={"vera-8": {"learning_rate": 0.05}})
    catalog = load_catalog()
    plan = plan_run(settings, catalog)
    assert list(plan.method_configs) == ["zero-shot", "vera-8", "loha-32"]
    assert plan.method_configs["vera-8"]["learning_rate"] == 0.05 and plan.method_configs["loha-32"]["fields"]["r"] == 32
    assert {job.spec.method: job.spec.runs_as for job in plan.jobs} == {"zero-shot": "", "vera-8": "peft", "loha-32": "peft"}
    data = execute(plan, prepare_model=False)
    cells = {cell["method"]: cell for cell in data["cells"]}
    assert set(cells) == {"zero-shot", "vera-8", "loha-32"} and data["run"]["methods"] == ["zero-shot", "vera-8", "loha-32"]
    for name in ("vera-8", "loha-32"):
        assert cells[name]["status"] == "ok", cells[name]["error"]
        assert cells[name]["guard"]["passed"]
    assert cells["vera-8"]["measurements"]["trainable_params"] != cells["loha-32"]["measurements"]["trainable_params"]
    trained = load_trained(tmp_path / "run", catalog, "loha-32")  # `tbench generate` loads it by its name
    inputs = [ex["features"] for ex in catalog.tasks.get("tiny-gen").splits()["test"][:3]]
    assert trained.answer(inputs) == cells["loha-32"]["predictions"][:3]


def test_the_cache_key_holds_the_config_content_not_its_path(tiny, tmp_path):
    from tuning_bench.run.runner import plan_run

    path = _write(tmp_path, {"peft_type": "IA3"}, "ia3.json")
    settings = _settings(tmp_path, methods=[], method_files={"ia3-file": str(path)})
    first = {job.spec.method: job.key for job in plan_run(settings, load_catalog()).jobs}
    assert "peft" not in first and "ia3-file" in first  # peft alone needs a config: not in a default run
    path.write_text(json.dumps({"peft_type": "IA3", "target_modules": ["k_proj"], "feedforward_modules": []}))
    second = {job.spec.method: job.key for job in plan_run(settings, load_catalog()).jobs}
    assert second["ia3-file"] != first["ia3-file"]
    assert {k: v for k, v in second.items() if k != "ia3-file"} == {k: v for k, v in first.items() if k != "ia3-file"}
    moved = tmp_path / "elsewhere.json"
    moved.write_text(path.read_text())
    third = plan_run(_settings(tmp_path, methods=[], method_files={"ia3-file": str(moved)}), load_catalog()).jobs
    assert {job.spec.method: job.key for job in third}["ia3-file"] == second["ia3-file"]


def test_setting_a_peft_option_brings_peft_into_a_default_run(tiny, tmp_path):
    from tuning_bench.run.runner import plan_run

    plan = plan_run(_settings(tmp_path, methods=[], options={"peft": {"peft_type": "IA3"}}), load_catalog())
    assert "peft" in plan.method_configs and plan.method_configs["peft"]["peft_type"] == "IA3"


@pytest.mark.parametrize(("method_files", "expected"), [
    ({"lora": "x.json"}, "'lora' is already a registered method"),
    ({"mine": "/nonexistent.json"}, "--method-config mine: no such PEFT config file"),
])
def test_method_config_mistakes_fail_before_anything_runs(tiny, tmp_path, method_files, expected):
    from tuning_bench.run.runner import plan_run

    with pytest.raises(UsageError, match=expected):
        plan_run(_settings(tmp_path, methods=["zero-shot"], method_files=method_files), load_catalog())


def test_method_config_flag_and_suite_key(tmp_path):
    from tuning_bench.run.settings import build_settings, check_value, load_suite

    assert check_value("method_files", ["a=x.json", "b = y.json"], "--method-config") == {"a": "x.json", "b": "y.json"}
    for bad, message in [(["a"], "expected NAME=FILE"), (["a.b=x.json"], "may hold only letters"),
                         (["a=x.json", "a=y.json"], "given twice")]:
        with pytest.raises(UsageError, match=message):
            check_value("method_files", bad, "--method-config")
    suite = tmp_path / "suite.yaml"
    suite.write_text("method_files: {vera-a: a.json, loha-b: b.json}\n")
    settings = build_settings(False, load_suite(suite), {"method_files": {"loha-b": "c.json"}})
    assert settings.method_files == {"vera-a": "a.json", "loha-b": "c.json"}  # a flag replaces one name
    suite.write_text("method_files: [a.json]\n")
    with pytest.raises(UsageError, match="expected NAME=FILE"):
        load_suite(suite)


def test_the_run_command_takes_method_config_flags(cli_runner, tmp_path):
    result = run_tbench(cli_runner, "run", "--methods", "zero-shot", "--method-config", "mine=/nonexistent/vera.json",
                        "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "--method-config mine: no such PEFT config file '/nonexistent/vera.json'" in result.output
    result = run_tbench(cli_runner, "run", "--method-config", "no-equals-sign", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "expected NAME=FILE" in result.output


def test_a_suite_method_config_must_be_a_mapping(tmp_path):
    from tuning_bench.run.settings import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("method_files: 5\n")
    with pytest.raises(UsageError, match="must map method names to config files"):
        load_suite(suite)


def test_a_file_from_another_peft_version_runs_when_its_extra_fields_ask_for_nothing(tmp_path):
    # PEFT's own OFT and C3A experiments carry alpha_pattern: {} and fan_in_fan_out: false, fields the
    # installed PEFT's classes may lack; a field that asks for something is still refused, and so is any
    # unknown field given inline.
    path = _write(tmp_path, {"peft_type": "VERA", "alpha_pattern": {}, "exclude_modules": None, "use_magic": False})
    assert _peft().resolve_config({"config": str(path)})["fields"] == {}
    with pytest.raises(UsageError, match="Unknown field 'alpha_pattern' of PEFT's VeraConfig"):
        _peft().resolve_config({"peft_type": "VERA", "alpha_pattern": "{}"})
    # AdaptionPromptConfig.target_modules is annotated str but defaults to None, as its file gives it
    prompt = _write(tmp_path, {"peft_type": "ADAPTION_PROMPT", "adapter_len": 10, "adapter_layers": 2,
                               "target_modules": None}, "adaption.json")
    assert _peft().resolve_config({"config": str(prompt)})["fields"]["target_modules"] is None
