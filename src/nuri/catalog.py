"""The model catalog: every deployment Nuri can route to, with the facts policy decides on.

A deployment is one model at one endpoint. Jurisdiction and hosting are what residency rules
read; licence, certifications and approved versions are what sector packs read; prices and
latency are what routing reads. Secrets are `SecretStr` so they are never printed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Hosting(StrEnum):
    ON_PREM = "on_prem"
    DOMESTIC_CLOUD = "domestic_cloud"
    FOREIGN_CLOUD = "foreign_cloud"


class Price(BaseModel):
    """List price per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    currency: str = "USD"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000


class Timeouts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connect: float = Field(5.0, gt=0, description="seconds to open a connection")
    read: float = Field(60.0, gt=0, description="seconds between bytes from the upstream")
    total: float = Field(600.0, gt=0, description="seconds for a whole request")


class Procurement(BaseModel):
    """Facts a procurement scorecard reads; all optional."""

    model_config = ConfigDict(extra="allow")
    vendor: str | None = None
    country_of_vendor: str | None = None
    sla: str | None = None
    red_team_report: bool | None = None
    model_card_url: str | None = None


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    provider: str = Field(description="adapter name: llamacpp | openai_compatible | …")
    model: str = Field("", description="the upstream's model name (llamacpp: a label)")
    model_path: str | None = Field(None, description="llamacpp: path to a GGUF file")
    base_url: str | None = None
    api_key: SecretStr | None = None
    jurisdiction: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 country where data is processed")
    hosting: Hosting
    certifications: list[str] = Field(default_factory=list, description="e.g. CSAP-high, ISMS-P")
    license: str | None = None
    commercial_use: bool = True
    model_version: str | None = None
    price: Price = Field(default_factory=Price)
    context_window: int = Field(8192, gt=0)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_concurrency: int = Field(64, gt=0)
    max_output_tokens: int | None = Field(
        None, gt=0,
        description="most output tokens one request may ask of this deployment, n × max_tokens; a request "
        "over it is not routed here (400 if no candidate takes it); none: no cap",
    )
    weight: float = Field(1.0, ge=0, description="share of traffic under the weighted strategy")
    tags: list[str] = Field(default_factory=list)
    procurement: Procurement = Field(default_factory=Procurement)
    options: dict[str, Any] = Field(default_factory=dict, description="provider-specific settings")

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        from nuri.providers import PROVIDERS

        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(PROVIDERS))}")
        return value

    @model_validator(mode="after")
    def _endpoint_present(self) -> Deployment:
        if self.provider == "openai_compatible" and not self.base_url:
            raise ValueError("base_url is required for provider openai_compatible")
        return self

    @property
    def is_domestic(self) -> bool:
        return self.hosting != Hosting.FOREIGN_CLOUD

    def public_view(self) -> dict[str, Any]:
        """What /v1/models and explain show: everything except secrets and local paths."""
        data = self.model_dump(mode="json", exclude={"api_key", "model_path", "options", "base_url"})
        return data


class Catalog:
    """Deployments and aliases: what a client's `model` may name, and what it resolves to."""

    def __init__(self, deployments: list[Deployment], aliases: dict[str, list[str]]) -> None:
        self.deployments = {d.id: d for d in deployments}
        self.aliases = {name: list(targets) for name, targets in aliases.items()}

    def names(self) -> list[str]:
        return [*self.deployments, *self.aliases]

    def resolve(self, name: str | None) -> list[Deployment]:
        """The candidate deployments for a requested model, in preference order."""
        from nuri.errors import ModelNotFound

        key = name or "default"
        if key in self.deployments:
            return [self.deployments[key]]
        if key in self.aliases:
            return [self.deployments[i] for i in self.aliases[key]]
        raise ModelNotFound(
            f"model {key!r} does not exist; available: {', '.join(self.names())}", param="model"
        )

    def models_list(self) -> dict[str, Any]:
        """The /v1/models payload: deployments and aliases with their public facts."""
        data: list[dict[str, Any]] = []
        for d in self.deployments.values():
            data.append({"id": d.id, "object": "model", "created": 0, "owned_by": d.procurement.vendor or "nuri",
                         "nuri": {"kind": "deployment", **d.public_view()}})
        for name, targets in self.aliases.items():
            data.append({"id": name, "object": "model", "created": 0, "owned_by": "nuri",
                         "nuri": {"kind": "alias", "targets": targets}})
        return {"object": "list", "data": data}
