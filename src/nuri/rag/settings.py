"""The `rag:` section of nuri.yaml: where chunks are stored, which collections exist and who may
read them. Like every config section, unknown keys are refused. Depends on pydantic alone,
because `nuri.config` imports it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

COLLECTION_NAME = r"^[a-z0-9][a-z0-9._-]*$"
Grade = Literal["O", "S", "C"]


class CollectionSettings(BaseModel):
    """One collection: its answering model, its default grade and its readers."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field("default", description="the model or alias that answers `model: rag:<collection>`")
    grade: Grade = Field("O", description="N2SF grade of every chunk unless its text or --grade says higher")
    teams: list[str] = Field(default_factory=list, description="teams that may read; with tags empty too: all")
    tags: list[str] = Field(default_factory=list, description="a key whose team carries one of these may read")
    retrieval: Literal["lexical", "dense", "hybrid"] = Field(
        "lexical", description="lexical: Kiwi morphemes + BM25; dense: embeddings; hybrid: both, rank-fused")
    top_k: int = Field(5, ge=1, le=50, description="passages injected per question")
    title: str = Field("", description="shown in listings")


class EmbeddingSettings(BaseModel):
    """Dense vectors come from Nuri's own /v1/embeddings, so policy sees every text embedded."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="base URL of a Nuri gateway, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="an in-country deployment (or alias of them) of this config")
    api_key: SecretStr | None = Field(None, description="a Nuri key allowed to use the model")
    batch: int = Field(16, ge=1, le=512, description="texts per embeddings request at ingest")


class RagSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database_url: str | None = Field(
        None, description="default: the ledger's PostgreSQL if configured, else SQLite rag.db in the data directory")
    db_schema: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                  description="PostgreSQL schema (created if missing)")
    chunk_chars: int = Field(700, ge=100, le=8000, description="longest chunk, in characters")
    max_context_chars: int = Field(6000, ge=200, description="most passage text injected into one request")
    embedding: EmbeddingSettings | None = None
    collections: dict[str, CollectionSettings] = Field(default_factory=dict)

    @field_validator("collections")
    @classmethod
    def _names(cls, value: dict[str, CollectionSettings]) -> dict[str, CollectionSettings]:
        bad = [name for name in value if not re.match(COLLECTION_NAME, name)]
        if bad:
            raise ValueError(f"collection names must match {COLLECTION_NAME}: {', '.join(bad)}")
        return value
