"""The "How measured" section of every report: definitions of the figures, and the facts of the run.

Everything comes from the results record; Markdown and HTML render the same pairs.
"""

from __future__ import annotations

from typing import Any

from tuning_bench.report.tables import format_seconds, to_number
from tuning_bench.run.records import RunDocument, as_document

DEFINITIONS = (
    ("Quality", "The headline metric is computed per cell on the test split (its first eval-examples examples); the "
                "table shows its mean ± sample standard deviation over seeds, and n counts the seeds that finished."),
    ("Losses", "Train loss is the loss of the last training step; validation loss is the mean target-token loss on "
               "the validation examples after training (for baselines, of the unchanged model)."),
    ("Trainable parameters", "Parameters that receive gradients after the method adapted the model, and their share "
                             "of all parameters of the adapted model."),
    ("Peak memory", "Peak memory on CPU is the process's resident high-water mark (VmHWM) during the phase, reset "
                    "between phases (so it includes the model and the Python process); on CUDA it is "
                    "torch.cuda.max_memory_allocated, reset between phases; reserved memory beside it is "
                    "torch.cuda.max_memory_reserved (allocated plus the caching allocator's free blocks: what a GPU must "
                    "have free)."),
    ("Training time", "Training time is the sum of the optimiser step times, validation excluded; tokens/s is the "
                      "non-padding tokens of the training batches divided by that time."),
    ("Steps/time to best", "The step of the lowest validation loss and the training time up to it (means over "
                           "seeds); with early stopping (--patience) that state is the one evaluated, without it the "
                           "final state is evaluated and this only reads the validation curve."),
    ("Saved size", "Saved size is the bytes of the weight files the method saves (0 for methods that only change "
                   "the prompt)."),
    ("Retention", "Probe loss Δ is the trained model's loss on a neutral probe set (the base model's own greedy "
                  "continuations of neutral prompts) minus the base model's, above 0 meaning it forgot; Other tasks Δ "
                  "is the mean change of the zero-shot headline on a few examples of every other registered task, "
                  "below 0 meaning worse; both only for methods that train."),
    ("Latency", "Latency is the wall time to answer one test example at batch size 1 (greedy generation for "
                "causal models, one forward pass for encoders)."),
    ("Deployment cost", "Answers/s (batch 8) is 8 test examples answered as one batch, divided by its wall time; "
                        "latency and answers/s merged are the same with the method's update merged into the base "
                        "weights (LoRA, IA3: PEFT merge_adapter), whose greedy answers are checked against the "
                        "unmerged ones; methods with nothing to merge have no merged figures."),
)


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in values) if values else "—"


def _text(value: Any) -> str:
    return "—" if value is None else str(value)


def measurement_facts(data: RunDocument | dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs describing where and how the record was measured, all from the record."""
    document = as_document(data)
    run = document.run
    env = document.environment  # measure.environment(): free-form, and grows with the platform
    packages = env.get("packages") or {}
    formats = sorted({str(c.prompt.get("format")) for c in document.cells if c.prompt.get("format")})
    prompt_format = _text(run.prompt_format) + (f" (resolved: {', '.join(formats)})" if formats else "")
    fingerprints = run.task_fingerprints or {}
    tasks = [f"{t} ({fingerprints[t]})" if t in fingerprints else t for t in run.tasks or []]
    eval_examples = run.eval_examples
    validation = f"{_text(run.val_examples)} examples"
    if run.val_every:
        validation += f", every {run.val_every} steps and at the end"
    if run.patience:
        validation += (f"; early stopping after {run.patience} validations without an improvement of at least "
                       f"{run.min_delta or 0:g}, best state evaluated")
    steps = _text(run.steps)
    if run.epochs:
        resolved = sorted({c.config.get("steps") for c in document.cells} - {None})
        steps = f"{run.epochs} epochs ({_join(resolved)} steps)"
    total, cached = run.cells_total, run.cells_cached
    cells = "—" if total is None else f"{total} total: {cached or 0} reused from cache, {total - (cached or 0)} run"
    facts = [
        ("Command", _text(document.command)),
        ("Recorded", _text(document.created)),
        ("Device", f"{run.device if run.present('device') else env.get('device', '—')} — {env.get('device_name', '—')}"),
        ("Precision", _text(run.precision)),
        ("Base weights", f"{run.base_quant} (bitsandbytes)" if run.base_quant else "as loaded (fp32)"),
        ("Torch threads", str(env.get("torch_threads", "—"))),
        ("Platform", str(env.get("platform", "—"))),
        ("Packages", _join(f"{name} {version}" for name, version in packages.items())),
        ("Project commit", str(env.get("project_commit", "—"))),
        ("Model", f"{_text(run.model)} (fingerprint {_text(run.model_fingerprint)})"),
        ("Tasks", _join(tasks)),
        ("Methods", _join(run.methods)),
        ("Seeds", _join(run.seeds)),
        ("Training steps", steps),
        ("Batch size", _text(run.batch_size)),
        ("Eval examples", {0: "whole test split", None: "—"}.get(eval_examples, str(eval_examples))),
        ("Validation", validation),
        ("Max length", _text(run.max_length)),
        ("Prompt format", prompt_format),
        ("Executor", _text(run.executor) + (f", {len(run.slots)} cells at a time: {_join(run.slots)}"
                                             if run.slots and len(run.slots) > 1 else "")),
        ("Wall time", format_seconds(to_number(run.wall_seconds))),
        ("Cells", cells),
    ]
    sweep = run.sweep
    if isinstance(sweep, dict):
        facts.append(("Sweep", f"{sweep.get('parameter', '—')} × {_join(f'{f:.3g}' for f in sweep.get('factors') or [])} "
                               "of each method's default"))
    return facts


def method_settings(data: RunDocument | dict[str, Any]) -> list[tuple[str, str]]:
    """Each method's options as run (before any sweep changed the learning rate)."""
    configs = as_document(data).run.method_configs or {}
    return [(method, _join(f"{k}={v}" for k, v in config.items()) if config else "no options")
            for method, config in configs.items()]
