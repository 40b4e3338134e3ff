"""Who is calling: the result of authentication, the input of policy, budgets and audit."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    team: str = "anonymous"
    key_id: str | None = None                     # the key's public id, never the key
    roles: frozenset[str] = field(default_factory=frozenset)
    tags: frozenset[str] = field(default_factory=frozenset)   # default policy tags of the team
    allowed_models: frozenset[str] | None = None  # None: any
    latency_tier: str = "standard"                # interactive | standard | batch
    budget: float | None = None                   # in the catalog currency; None: unlimited
    rpm: int | None = None                        # the key's limits
    tpm: int | None = None
    team_rpm: int | None = None                   # the team's limits, shared by all its keys
    team_tpm: int | None = None
    workload: str | None = None                   # the key's default workload (planning)

    @property
    def is_anonymous(self) -> bool:
        return self.key_id is None


ANONYMOUS = Principal()
