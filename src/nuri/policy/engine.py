"""The policy engine: precompiled rules → a Decision in microseconds.

Rules are compiled once at load: conditions become frozensets, and whether each known
deployment meets each rule's constraint is computed ahead, so `decide` is set intersections and
table look-ups. Composition (see docs/policy.md):

* a `block` rule without `require` excludes every deployment; with `require`, it excludes the
  deployments that meet none of its constraints (masked or not);
* a `pseudonymize` rule adds its mask types to every deployment that meets none of its
  constraints (all deployments when it has no `require`);
* per deployment the strictest outcome wins: excluded > masked (union of mask types) > clear;
  constraints of several rules therefore intersect;
* `allow` rules only switch off the rules they `override` (never a `final` one);
  `label` and `flag` add to the decision without touching eligibility;
* when several rules exclude a deployment, the first in load order is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nuri.catalog import Deployment
from nuri.config import PolicySettings
from nuri.policy.decision import Decision, RuleMatch, Verdict
from nuri.policy.loader import LoadedRule, load_rules
from nuri.policy.model import Constraint, PolicyError, When
from nuri.principal import Principal
from nuri.privacy.types import Classification, PipaCategory

__all__ = ["Decision", "PolicyEngine", "PolicyError", "RuleMatch", "Verdict"]


@dataclass(frozen=True, slots=True)
class _Conditions:
    entity_types: frozenset[str]
    categories: frozenset[str]
    topics: frozenset[str]
    grades: frozenset[str]
    languages: tuple[tuple[str, float], ...]
    domains: frozenset[str]
    teams: frozenset[str]
    tags: frozenset[str]
    roles: frozenset[str]
    models: frozenset[str]
    latency_tiers: frozenset[str]
    endpoints: frozenset[str]
    content: frozenset[str]

    @classmethod
    def compile(cls, when: When) -> _Conditions:
        return cls(
            entity_types=frozenset(when.entity_types),
            categories=frozenset(str(c) for c in when.categories),
            topics=frozenset(when.topics),
            grades=frozenset(when.grades),
            languages=tuple(when.languages.items()),
            domains=frozenset(when.domains),
            teams=frozenset(when.teams),
            tags=frozenset(when.tags),
            roles=frozenset(when.roles),
            models=frozenset(when.models),
            latency_tiers=frozenset(when.latency_tiers),
            endpoints=frozenset(when.endpoints),
            content=frozenset(when.content),
        )

    def matches(self, req: _Request) -> bool:
        # Each condition: empty means "any"; otherwise the request must share a value with it.
        if self.entity_types and self.entity_types.isdisjoint(req.types):
            return False
        if self.categories and self.categories.isdisjoint(req.categories):
            return False
        if self.topics and self.topics.isdisjoint(req.topics):
            return False
        if self.grades and req.grade not in self.grades:
            return False
        if self.domains and self.domains.isdisjoint(req.domains):
            return False
        if self.teams and req.principal.team not in self.teams:
            return False
        if self.tags and self.tags.isdisjoint(req.principal.tags):
            return False
        if self.roles and self.roles.isdisjoint(req.principal.roles):
            return False
        if self.models and req.requested not in self.models:
            return False
        if self.latency_tiers and req.latency_tier not in self.latency_tiers:
            return False
        if self.endpoints and req.endpoint not in self.endpoints:
            return False
        if self.content and self.content.isdisjoint(req.content):
            return False
        return not self.languages or any(
            _share_ok(req.languages.get(lang, 0.0), minimum) for lang, minimum in self.languages
        )


def _share_ok(share: float, minimum: float) -> bool:
    """A language counts when present (minimum 0) or at least at the minimum share."""
    return share > 0 if minimum <= 0 else share >= minimum


@dataclass(frozen=True, slots=True)
class _Request:
    types: frozenset[str]
    categories: frozenset[str]
    topics: frozenset[str]
    grade: str
    languages: dict[str, float]
    domains: frozenset[str]
    principal: Principal
    requested: str
    latency_tier: str
    endpoint: str | None
    type_categories: dict[str, frozenset[str]]   # category → entity types present in it
    content: frozenset[str]                      # kinds of unscanned content: image, audio, file


def _satisfies(constraint: Constraint, dep: Deployment) -> bool:
    if constraint.jurisdictions is not None and dep.jurisdiction.upper() not in constraint.jurisdictions:
        return False
    if constraint.hosting is not None and dep.hosting not in constraint.hosting:
        return False
    if constraint.certifications is not None:
        held = {c.lower() for c in dep.certifications}
        if not any(c.lower() in held for c in constraint.certifications):
            return False
    if constraint.licenses is not None and (
        dep.license is None or dep.license.lower() not in {x.lower() for x in constraint.licenses}
    ):
        return False
    if constraint.commercial_use is not None and dep.commercial_use != constraint.commercial_use:
        return False
    if constraint.model_versions is not None:
        if dep.model_version is None:
            return False
        if dep.model_version not in constraint.model_versions and (
            f"{dep.model}@{dep.model_version}" not in constraint.model_versions
        ):
            return False
    if constraint.deployment_tags is not None and not set(constraint.deployment_tags) & set(dep.tags):
        return False
    return not (constraint.deployments is not None and dep.id not in constraint.deployments)


class _Compiled:
    """A rule ready for decide: conditions as frozensets, the fixed parts of its match prebuilt."""

    __slots__ = ("action", "final", "id", "loaded", "mask", "match", "overrides", "require", "rule",
                 "unless", "when")

    def __init__(self, loaded: LoadedRule) -> None:
        rule = loaded.rule
        self.loaded, self.rule, self.id, self.action = loaded, rule, rule.id, rule.action
        self.when = _Conditions.compile(rule.when)
        self.unless = _Conditions.compile(rule.unless) if rule.unless else None
        self.mask = frozenset(rule.mask) if rule.mask is not None else None
        self.require = rule.require
        self.overrides = frozenset(rule.overrides)
        self.final = rule.final
        self.match = RuleMatch(rule.id, loaded.pack, rule.citation, rule.action, rule.message)

    def meets(self, dep: Deployment) -> bool:
        """Whether the deployment meets any of the rule's constraints (untouched by the rule)."""
        if self.require is None:
            return False
        return any(_satisfies(c, dep) for c in self.require)

    def mask_types(self, req: _Request) -> frozenset[str]:
        if self.mask is not None:
            return self.mask & req.types
        if self.when.entity_types:
            return self.when.entity_types & req.types
        if self.when.categories:
            out: set[str] = set()
            for cat in self.when.categories:
                out |= req.type_categories.get(cat, frozenset())
            return frozenset(out)
        return req.types


class _State:
    """One immutable compiled policy; reload swaps the whole object at once."""

    def __init__(self, rules: list[LoadedRule], deployments: Iterable[Deployment]) -> None:
        self.rules = [_Compiled(lr) for lr in rules]
        self.any_overrides = any(c.overrides for c in self.rules)
        self.deployments: dict[str, Deployment] = {d.id: d for d in deployments}
        # meets[dep_id][rule index]: precomputed constraint satisfaction for known deployments.
        self.meets: dict[str, tuple[bool, ...]] = {
            dep_id: tuple(c.meets(dep) for c in self.rules) for dep_id, dep in self.deployments.items()
        }

    def meets_row(self, dep: Deployment) -> tuple[bool, ...]:
        if self.deployments.get(dep.id) is dep:
            return self.meets[dep.id]
        # A deployment object the engine was not loaded with: compute, and remember it by
        # identity (the same id with other attributes is recomputed, never trusted).
        self.deployments[dep.id] = dep
        row = self.meets[dep.id] = tuple(c.meets(dep) for c in self.rules)
        return row


class PolicyEngine:
    """Loads packs and files, and decides per request which candidates may see what."""

    classifies = True           # decisions read the request's classification

    def __init__(self, rules: list[LoadedRule], deployments: list[Deployment], enabled: bool = True) -> None:
        self._state = _State(rules if enabled else [], deployments)
        self.enabled = enabled

    @classmethod
    def load(cls, settings: PolicySettings, deployments: list[Deployment]) -> PolicyEngine:
        """Raise PolicyError naming pack/file, rule and field when anything is invalid."""
        rules = load_rules(settings) if settings.enabled else []
        return cls(rules, deployments, enabled=settings.enabled)

    def reload(self, settings: PolicySettings, deployments: list[Deployment]) -> None:
        """Swap in a new policy; if it fails to load, raise and keep the current one."""
        rules = load_rules(settings) if settings.enabled else []
        state = _State(rules, deployments)
        self._state = state
        self.enabled = settings.enabled

    @property
    def rules(self) -> list[LoadedRule]:
        return [c.loaded for c in self._state.rules]

    def decide(
        self,
        classification: Classification,
        principal: Principal,
        requested: str,
        candidates: list[Deployment],
        latency_tier: str | None = None,
        endpoint: str | None = None,
    ) -> Decision:
        """One verdict per candidate, in order. Pure and allocation-light: safe to call per request."""
        state = self._state
        req = _request(classification, principal, requested, latency_tier, endpoint)

        hits: list[tuple[int, _Compiled]] = []
        for index, compiled in enumerate(state.rules):
            if compiled.when.matches(req) and not (compiled.unless and compiled.unless.matches(req)):
                hits.append((index, compiled))
        overridden: list[str] = []
        if state.any_overrides:
            switched_off = {target for _, c in hits for target in c.overrides}
            overridden = [c.id for _, c in hits if c.id in switched_off and not c.final]
            hits = [(i, c) for i, c in hits if c.id not in overridden]

        matched: list[RuleMatch] = []
        block_all: _Compiled | None = None
        blockers: list[tuple[int, _Compiled]] = []
        maskers: list[tuple[int, _Compiled, frozenset[str]]] = []
        label_text: str | None = None
        flag_reasons: list[str] = []
        for index, c in hits:
            action = c.action
            if action == "pseudonymize":
                masks = c.mask_types(req)
                m = c.match
                matched.append(RuleMatch(m.id, m.pack, m.citation, m.action, m.message, masks))
                if masks:
                    maskers.append((index, c, masks))
                continue
            matched.append(c.match)
            if action == "block":
                if c.require is None:
                    block_all = block_all or c
                else:
                    blockers.append((index, c))
            elif action == "label" and label_text is None:
                label_text = c.rule.message or "This content was generated by AI."
            elif action == "flag":
                flag_reasons.append(f"{c.id}: {c.rule.message}" if c.rule.message else c.id)

        verdicts = [_verdict(dep, state.meets_row(dep), block_all, blockers, maskers) for dep in candidates]
        eligible = [v for v in verdicts if v.eligible]
        block_message = None
        if not eligible:
            action = "block"
            block_message = _block_message(verdicts, block_all, blockers, state, requested)
        elif any(v.mask_types for v in eligible):
            action = "pseudonymize"
        else:
            action = "allow"
        return Decision(
            action=action,
            verdicts=verdicts,
            matched=matched,
            label=label_text is not None,
            label_text=label_text,
            flag=bool(flag_reasons),
            flag_reasons=flag_reasons,
            block_message=block_message,
            requested=requested,
            overridden=overridden,
        )


def _request(
    cl: Classification, principal: Principal, requested: str, latency_tier: str | None, endpoint: str | None
) -> _Request:
    by_category: dict[str, set[str]] = {}
    types: set[str] = set()
    for e in cl.entities:
        if e.type not in types:       # one entry per type: a 32 KB prompt can hold hundreds of entities
            types.add(e.type)
            by_category.setdefault(str(e.category), set()).add(e.type)
    categories = {str(c) for c in cl.categories} | set(by_category)
    if cl.sensitive_topics:
        categories.add(str(PipaCategory.SENSITIVE))
    return _Request(
        types=frozenset(types),
        categories=frozenset(categories),
        topics=frozenset(t.lower() for t in cl.sensitive_topics),
        grade=cl.n2sf_grade,
        languages={k.lower(): v for k, v in cl.languages.items()},
        domains=frozenset(d.lower() for d in cl.domains),
        principal=principal,
        requested=requested,
        latency_tier=latency_tier or principal.latency_tier,
        endpoint=endpoint,
        type_categories={k: frozenset(v) for k, v in by_category.items()},
        content=frozenset(cl.content_kinds) if cl.unscanned else frozenset(),
    )


def _verdict(
    dep: Deployment,
    meets: tuple[bool, ...],
    block_all: _Compiled | None,
    blockers: list[tuple[int, _Compiled]],
    maskers: list[tuple[int, _Compiled, frozenset[str]]],
) -> Verdict:
    if block_all is not None:
        return Verdict(dep.id, False, frozenset(), block_all.rule.id, f"{block_all.rule.id}: {block_all.rule.message}")
    for index, c in blockers:
        if not meets[index]:
            return Verdict(dep.id, False, frozenset(), c.rule.id, f"{c.rule.id}: {c.rule.message}")
    masks: set[str] = set()
    by: list[str] = []
    for index, c, types in maskers:
        if not meets[index]:
            masks |= types
            by.append(c.rule.id)
    if masks:
        return Verdict(
            dep.id, True, frozenset(masks), None,
            f"only after pseudonymising {', '.join(sorted(masks))} ({', '.join(by)})",
        )
    return Verdict(dep.id, True, frozenset(), None, "clear text allowed")


def _block_message(
    verdicts: list[Verdict],
    block_all: _Compiled | None,
    blockers: list[tuple[int, _Compiled]],
    state: _State,
    requested: str,
) -> str:
    if not verdicts:
        return f"no deployment serves {requested!r}"
    if block_all is not None:
        r = block_all.rule
        return f"blocked by policy rule {r.id} ({r.citation}): {r.message}"
    ids = list(dict.fromkeys(v.excluded_by for v in verdicts if v.excluded_by))
    by_id = {c.rule.id: c.rule for _, c in blockers}
    parts = [f"{i} ({by_id[i].citation}): {by_id[i].message}" for i in ids if i in by_id]
    return f"no deployment for {requested!r} is allowed by policy: " + "; ".join(parts)
