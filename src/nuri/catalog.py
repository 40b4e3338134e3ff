"""The model catalog: every deployment Nuri can route to, with the facts policy decides on.

A deployment is one model at one endpoint. Jurisdiction and hosting are what residency rules
read; licence, certifications and approved versions are what sector packs read; prices and
latency are what routing reads. Secrets are `SecretStr` so they are never printed.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from nuri.errors import ModelNotFound

# The adapters a deployment may name; nuri.providers maps each to its class (a test keeps the two
# in step). Named here so that the catalog, below the adapters, need not import them.
PROVIDER_NAMES = ("llamacpp", "openai_compatible", "anthropic")


class Hosting(StrEnum):
    ON_PREM = "on_prem"
    DOMESTIC_CLOUD = "domestic_cloud"
    FOREIGN_CLOUD = "foreign_cloud"


class Price(BaseModel):
    """List price per million tokens, in `currency`.

    Budgets and the cost strategy compare prices in one currency (`money.currency` in the config);
    the config sets each price's exchange rate into it once it has checked that a rate exists, so
    nothing downstream ever adds a won to a dollar."""

    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the prices")
    _rate: float = PrivateAttr(1.0)     # one unit of `currency` in the budget currency

    @property
    def free(self) -> bool:
        return not (self.input_per_mtok or self.output_per_mtok)

    def set_rate(self, rate: float) -> None:
        """The exchange rate into the budget currency (the config calls this after validating)."""
        self._rate = rate

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The list cost, in this price's own currency."""
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000

    def converted(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost in the budget currency: what budgets and the cost strategy compare."""
        return self.cost(prompt_tokens, completion_tokens) * self._rate

    def highest_per_token(self) -> float:
        """The dearer of the two per-token prices, in the budget currency (admission's reserve)."""
        return max(self.input_per_mtok, self.output_per_mtok) * self._rate / 1_000_000


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


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the HTTP client writes itself; a configured value would corrupt the framing or the route.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-type"}


class Upstream(BaseModel):
    """How Nuri reaches a deployment's endpoint: auth scheme, extra headers, egress proxy, TLS.

    Header values and the proxy URL are `SecretStr` (they often carry keys or proxy credentials)
    and take `${VAR}` from the environment like every string in the config."""

    model_config = ConfigDict(extra="forbid")
    auth: Literal["bearer", "api-key", "none"] | None = Field(
        None, description="how api_key is sent: bearer (Authorization: Bearer), api-key (the auth_header "
        "header, as Azure OpenAI expects), none (no credential); default: the provider's own scheme")
    auth_header: str = Field("api-key", description="the header api-key auth puts the key in")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="sent with every request")
    proxy: SecretStr | None = Field(
        None, description="http://[user:pass@]host:port to reach this endpoint through (HTTPS through a "
        "CONNECT tunnel); 'direct' ignores HTTPS_PROXY/HTTP_PROXY; default: those variables, minus NO_PROXY")
    ca_bundle: str | None = Field(None, description="PEM file of the CAs to trust instead of the system's")
    client_cert: str | None = Field(None, description="PEM client certificate for mutual TLS")
    client_key: str | None = Field(None, description="its private key, if not in client_cert")

    @field_validator("auth_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.match(value) or value.lower() in _RESERVED_HEADERS:
            raise ValueError(f"{value!r} cannot be used as the auth header")
        return value

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by Nuri itself and cannot be configured")
            if any(c in secret.get_secret_value() for c in "\r\n\0"):
                raise ValueError(f"the value of header {name!r} holds a line break or NUL")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "direct":
            return value
        url = value.get_secret_value()
        if not url.startswith("http://"):
            raise ValueError("proxy must be an http:// URL (TLS to the endpoint runs inside the tunnel) or 'direct'")
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> Upstream:
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        return self


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
    upstream: Upstream = Field(default_factory=Upstream, description="auth scheme, headers, proxy and TLS")
    responses: bool = Field(
        False, description="the endpoint serves the Responses API itself (openai_compatible only): a Responses "
        "request whose candidates all say so is passed through, not translated to chat completions")

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDER_NAMES:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(PROVIDER_NAMES))}")
        return value

    @model_validator(mode="after")
    def _endpoint_present(self) -> Deployment:
        if self.provider == "openai_compatible" and not self.base_url:
            raise ValueError("base_url is required for provider openai_compatible")
        if self.responses and self.provider != "openai_compatible":
            raise ValueError("responses: true needs provider openai_compatible")
        if self.upstream.auth == "api-key" and self.api_key is None:
            raise ValueError("upstream.auth api-key needs api_key")
        if self.upstream.auth == "none" and self.api_key is not None:
            raise ValueError("upstream.auth none sends no credential, yet api_key is set")
        tls_files = self.upstream.ca_bundle or self.upstream.client_cert
        if tls_files and (self.base_url or "").startswith("http://"):
            raise ValueError("upstream.ca_bundle and client_cert need an https:// base_url")
        custom = {name.lower() for name in self.upstream.headers}
        auth_header = self.upstream.auth_header if self.upstream.auth == "api-key" else "authorization"
        if self.api_key is not None and auth_header.lower() in custom:
            raise ValueError(f"upstream.headers sets {auth_header}, which carries api_key")
        return self

    @property
    def is_domestic(self) -> bool:
        return self.hosting != Hosting.FOREIGN_CLOUD

    def public_view(self) -> dict[str, Any]:
        """What /v1/models and explain show: everything except secrets and local paths."""
        data = self.model_dump(mode="json", exclude={"api_key", "model_path", "options", "base_url",
                                                              "upstream"})
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
