"""Suites as files: `suite.yaml` (prompt template, shots, scorer, settings) over `items.jsonl`.

Every dataset is content-hashed (sha256 of the canonical bytes of each item) so a stored result
names the exact item set it was scored on; the suite definition (template, shots, scorer,
settings) has its own hash, because changing a prompt changes what a score means.

The shipped suites are package data (`nuri/evals/suites/`), found through importlib.resources so
that an installed wheel has them as well as a checkout.
"""

from __future__ import annotations

import atexit
import hashlib
import json
from contextlib import ExitStack
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from nuri import config as nuri_config

SUITE_FILE = "suite.yaml"
LETTERS = "ABCDEFGHIJ"


class ScorerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class SuiteSettings(BaseModel):
    """Generation settings recorded with every run so that results can be reproduced."""

    model_config = ConfigDict(extra="allow")
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int = 0
    requires_korean: bool = False
    num_shots: int | None = Field(None, description="how many of the suite's shots to use; None: all")
    stream: bool = Field(True, description="stream replies so time to first token is measured")
    pass_threshold: float = Field(1.0, description="a score at or above this counts as correct")
    reject_echo: bool = Field(True, description="a reply that copies most of its prompt scores 0")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    license: str | None = None
    source: str | None = None
    tags: list[str] = Field(default_factory=list)
    system: str | None = None
    template: str = "{question}"
    shots: list[dict[str, Any]] = Field(default_factory=list)
    scorer: ScorerSpec
    settings: SuiteSettings = Field(default_factory=SuiteSettings)
    items_file: str = Field("items.jsonl", alias="items")
    path: Path | None = Field(None, exclude=True)

    @cached_property
    def items(self) -> list[dict[str, Any]]:
        if self.path is None:
            return []
        return read_jsonl(self.path / self.items_file)

    @cached_property
    def version(self) -> str:
        """sha256 over the canonical items: names the exact dataset a result was scored on."""
        return dataset_hash(self.items)

    @cached_property
    def definition_hash(self) -> str:
        data = self.model_dump(mode="json", exclude={"path", "description", "tags", "license", "source"})
        return hashlib.sha256(canonical(data)).hexdigest()[:16]

    def requires_korean(self, item: dict[str, Any]) -> bool:
        return bool(item.get("requires_korean", self.settings.requires_korean))

    def messages(self, item: dict[str, Any], num_shots: int | None = None) -> list[dict[str, str]]:
        """System prompt, then shots as user/assistant turns, then the item."""
        out: list[dict[str, str]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        n = self.settings.num_shots if num_shots is None else num_shots
        for shot in self.shots[: len(self.shots) if n is None else n]:
            out.append({"role": "user", "content": render(self.template, shot)})
            out.append({"role": "assistant", "content": str(shot.get("reply", ""))})
        out.append({"role": "user", "content": render(self.template, item)})
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": len(self.items),
            "version": self.version,
            "definition": self.definition_hash,
            "scorer": self.scorer.name,
            "description": self.description,
            "license": self.license,
            "requires_korean": self.settings.requires_korean,
            "path": str(self.path) if self.path else None,
        }


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def item_hash(item: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(item)).hexdigest()[:16]


def dataset_hash(items: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(canonical(item))
        h.update(b"\n")
    return h.hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
            item_id = str(item.get("id") or f"{lineno}")
            if item_id in seen:
                raise ValueError(f"{path}:{lineno}: duplicate item id {item_id!r}")
            seen.add(item_id)
            item["id"] = item_id
            items.append(item)
    return items


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


class _ItemView(dict):
    """Template fields: the item's own plus derived blocks; a missing field names itself."""

    def __missing__(self, key: str) -> str:
        raise KeyError(f"template field {{{key}}} is not in the item")


def render(template: str, item: dict[str, Any]) -> str:
    view = _ItemView(item)
    choices = item.get("choices")
    if isinstance(choices, list):
        view.setdefault("choices_block", "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)))
    passages = item.get("passages")
    if isinstance(passages, list):
        view.setdefault("passages_block", "\n\n".join(f"[{i + 1}] {p}" for i, p in enumerate(passages)))
    return template.format_map(view)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    directory = path.parent if path.is_file() else path
    raw = yaml.safe_load((directory / SUITE_FILE).read_text(encoding="utf-8")) or {}
    suite = Suite.model_validate(raw)
    suite.path = directory
    return suite


def suite_dirs(explicit: list[Path] | None = None, data_directory: Path | None = None) -> list[Path]:
    """Where suites live: explicit dirs, NURI_EVALS_DIR, <data_dir>/evals (imports), shipped ones."""
    dirs: list[Path] = list(explicit or [])
    env_dirs = nuri_config.env("NURI_EVALS_DIR")
    if env_dirs:
        dirs += [Path(p) for p in env_dirs.split(":") if p]
    if data_directory is not None:
        dirs.append(data_directory / "evals")
    dirs.append(shipped_dir())
    return [d for d in dirs if d.is_dir()]


@cache
def shipped_dir() -> Path:
    """The suites shipped in the package, as a directory on disk. An ordinary install already is
    one; a zipped import (Python 3.12+) has them extracted once, for the life of the process."""
    files = resources.files("nuri.evals") / "suites"
    if isinstance(files, Path):
        return files
    stack = ExitStack()
    atexit.register(stack.close)
    return stack.enter_context(resources.as_file(files))


def discover(dirs: list[Path]) -> dict[str, Suite]:
    """Suites by name; the first directory wins, so a user's copy overrides a shipped one."""
    found: dict[str, Suite] = {}
    for base in dirs:
        for suite_file in sorted(base.glob(f"*/{SUITE_FILE}")):
            suite = load_suite(suite_file.parent)
            found.setdefault(suite.name, suite)
    return found
