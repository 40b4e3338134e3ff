"""The policy rule model: what a rule may say, validated before it can decide anything.

A rule is `when` (conditions on the request's Classification, the caller and the request) +
`require` (a constraint on deployment attributes) + an `action`. The schema is strict
(`extra="forbid"`, known entity types and categories only) because a typo in a residency rule
must stop the load, not silently never match.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nuri.catalog import Hosting
from nuri.policy.terminology import Term
from nuri.privacy.detectors.registry import ENTITY_TYPES
from nuri.privacy.types import PipaCategory

Action = Literal["allow", "pseudonymize", "block", "label", "flag"]

# Entity types the personal-data engine reports (its detector registry). Rules may only name these.
KNOWN_ENTITY_TYPES: frozenset[str] = frozenset(ENTITY_TYPES)
GRADES = ("O", "S", "C")  # N2SF grades, lowest to highest
ENDPOINTS = frozenset({"chat", "completions", "embeddings"})


class PolicyError(ValueError):
    """A policy pack or file cannot be used; the message names the pack/file, rule id and field."""


def _upper_list(values: list[str]) -> list[str]:
    return [v.strip().upper() for v in values]


class When(BaseModel):
    """Conditions. Every key given must hold (AND); within a key any listed value is enough (OR)."""

    model_config = ConfigDict(extra="forbid")
    entity_types: list[str] = Field(default_factory=list, description="any of these entity types present")
    categories: list[PipaCategory] = Field(default_factory=list, description="any of these PIPA categories")
    topics: list[str] = Field(default_factory=list, description="any of these sensitive topics")
    grades: list[Literal["C", "S", "O"]] = Field(default_factory=list, description="N2SF grade is one of")
    languages: dict[str, float] = Field(
        default_factory=dict, description="language → minimum share (a list means share > 0)"
    )
    domains: list[str] = Field(default_factory=list, description="any of these high-impact domain tags")
    teams: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, description="any of the caller's tags")
    roles: list[str] = Field(default_factory=list, description="any of the caller's roles")
    models: list[str] = Field(default_factory=list, description="requested model or alias is one of")
    latency_tiers: list[str] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list, description="chat | completions | embeddings")
    content: list[Literal["image", "audio", "file"]] = Field(
        default_factory=list, description="the request carries content Nuri cannot read, of any of these kinds"
    )

    @field_validator("languages", mode="before")
    @classmethod
    def _list_means_present(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(v): 0.0 for v in value}
        return value

    @field_validator("entity_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        value = _upper_list(value)
        unknown = [v for v in value if v not in KNOWN_ENTITY_TYPES]
        if unknown:
            raise ValueError(f"unknown entity type(s) {unknown}; known: {', '.join(sorted(KNOWN_ENTITY_TYPES))}")
        return value

    @field_validator("topics", "domains", "languages", mode="after")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k.strip().lower(): v for k, v in value.items()}
        return [v.strip().lower() for v in value]

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown endpoint(s) {unknown}; known: {', '.join(sorted(ENDPOINTS))}")
        return value


class Constraint(BaseModel):
    """Deployment attributes a rule requires. Every key given must hold; a list means any of."""

    model_config = ConfigDict(extra="forbid")
    jurisdictions: list[str] | None = Field(None, description="ISO country codes")
    hosting: list[Hosting] | None = None
    certifications: list[str] | None = Field(None, description="deployment holds any of these")
    licenses: list[str] | None = Field(None, description="deployment licence is one of")
    commercial_use: bool | None = None
    model_versions: list[str] | None = Field(
        None, description="approved versions: 'version' or 'model@version'"
    )
    deployment_tags: list[str] | None = Field(None, description="deployment carries any of these tags")
    deployments: list[str] | None = Field(None, description="deployment id is one of")

    @field_validator("jurisdictions")
    @classmethod
    def _iso(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        value = _upper_list(value)
        bad = [v for v in value if len(v) != 2 or not v.isalpha()]
        if bad:
            raise ValueError(f"jurisdictions must be ISO 3166 two-letter codes; got {bad}")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Constraint:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a constraint must name at least one deployment attribute")
        return self


class Rule(BaseModel):
    """One rule of a pack. See docs/policy.md for the semantics of each action."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    citation: str = Field(min_length=1, description="the article or guideline the rule implements")
    when: When = Field(default_factory=When)
    unless: When | None = Field(None, description="the rule does not apply when this matches")
    require: list[Constraint] | None = Field(
        None, description="deployments meeting any of these constraints are untouched by the rule"
    )
    action: Action
    mask: list[str] | None = Field(
        None, description="pseudonymize: entity types to mask (default: those the rule matched)"
    )
    message: str = ""
    overrides: list[str] = Field(default_factory=list, description="rule ids this rule switches off")
    final: bool = Field(False, description="no other rule can override this one")

    @field_validator("require", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return [value]
        return value

    @field_validator("mask")
    @classmethod
    def _known_mask(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        value = _upper_list(value)
        unknown = [v for v in value if v not in KNOWN_ENTITY_TYPES]
        if unknown:
            raise ValueError(f"unknown entity type(s) {unknown}")
        return value

    @model_validator(mode="after")
    def _action_fits(self) -> Rule:
        if self.require is not None and self.action not in ("block", "pseudonymize"):
            raise ValueError(f"'require' is only meaningful with action block or pseudonymize, not {self.action}")
        if self.require is not None and not self.require:
            raise ValueError("'require' must list at least one constraint")
        if self.mask is not None and self.action != "pseudonymize":
            raise ValueError("'mask' is only meaningful with action pseudonymize")
        if self.action == "block" and not self.message:
            raise ValueError("a block rule needs a 'message' for the user")
        if self.id in self.overrides:
            raise ValueError("a rule cannot override itself")
        return self


class Pack(BaseModel):
    """A policy pack: a named, ordered list of rules plus parameters they may reference."""

    model_config = ConfigDict(extra="forbid")
    pack: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    params: dict[str, list[str] | str] = Field(
        default_factory=dict, description="defaults for $name references; settings.params override"
    )
    rules: list[Rule] = Field(default_factory=list)
    terms: list[Term] = Field(default_factory=list, description="terminology for replies (policy/terminology.py)")

    @model_validator(mode="after")
    def _unique_ids(self) -> Pack:
        for kind, ids in (("rule", [r.id for r in self.rules]), ("term", [t.id for t in self.terms])):
            seen: set[str] = set()
            for ident in ids:
                if ident in seen:
                    raise ValueError(f"{kind} id {ident!r} appears twice")
                seen.add(ident)
        return self
