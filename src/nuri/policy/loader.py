"""Read packs and policy files, substitute parameters, validate, and name the culprit on error.

Packs are looked up by name in `nuri/policy/packs/`; files by path. `$name` strings are
replaced by parameters (settings.params, then the pack's own defaults; `$home` is the home
jurisdiction) before validation, so a pack can say "approved model versions" without knowing
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nuri.config import PolicySettings
from nuri.policy.model import Pack, PolicyError, Rule
from nuri.policy.terminology import Term

PACKS_DIR = Path(__file__).parent / "packs"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A validated rule with the pack it came from (precedence is load order)."""

    rule: Rule
    pack: str
    order: int
    source: str = ""     # "policy pack 'kr-pipa'" or "policy file path", for error messages


def available_packs() -> list[str]:
    return sorted(p.stem for p in PACKS_DIR.glob("*.yaml"))


def _substitute(node: Any, params: dict[str, Any], where: str) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, params, where) for k, v in node.items()}
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            value = _substitute(item, params, where)
            if isinstance(item, str) and item.startswith("$") and isinstance(value, list):
                out.extend(value)
            else:
                out.append(value)
        return out
    if isinstance(node, str) and node.startswith("$"):
        name = node[1:]
        if name not in params:
            raise PolicyError(f"{where}: parameter ${name} is not defined (set policy.params.{name})")
        return params[name]
    return node


def _describe(error: ValidationError, raw: dict[str, Any], where: str) -> str:
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        rule_part = ""
        if len(loc) >= 2 and loc[0] in ("rules", "terms") and isinstance(loc[1], int):
            kind = "rule" if loc[0] == "rules" else "term"
            entries: list[Any] = raw[loc[0]] if isinstance(raw.get(loc[0]), list) else []
            index = loc[1]
            entry = entries[index] if index < len(entries) else None
            ident = entry.get("id") if isinstance(entry, dict) else None
            rule_part = f"{kind} {ident!r}" if ident else f"{kind} #{index + 1}"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc if not isinstance(p, int)) or "(rule)"
        lines.append(f"{rule_part + ' ' if rule_part else ''}field {field}: {item['msg']}")
    return f"{where}: " + "; ".join(lines)


def parse_pack(text: str, where: str, settings: PolicySettings) -> Pack:
    """Validate one pack's YAML text; `where` names it in errors."""
    try:
        raw = yaml.load(text, Loader=_YAML_LOADER)   # CSafeLoader when libyaml is there: safe and fast
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be a mapping with 'pack' and 'rules'")
    defaults: dict[str, Any] = raw["params"] if isinstance(raw.get("params"), dict) else {}
    params: dict[str, Any] = {**defaults, **settings.params, "home": [settings.home_jurisdiction]}
    substituted = dict(raw)
    for section, kind in (("rules", "rule"), ("terms", "term")):
        if isinstance(raw.get(section), list):
            substituted[section] = [
                _substitute(entry, params, f"{where}: {kind} {entry.get('id')!r}" if isinstance(entry, dict) else where)
                for entry in raw[section]
            ]
    try:
        return Pack.model_validate(substituted)
    except ValidationError as exc:
        raise PolicyError(_describe(exc, raw, where)) from exc


def _sources(settings: PolicySettings) -> list[tuple[str, str]]:
    """(where, YAML text) of every pack and file, in precedence order."""
    sources: list[tuple[str, str]] = []
    for name in settings.packs:
        path = PACKS_DIR / f"{name}.yaml"
        if not path.is_file():
            raise PolicyError(f"policy pack {name!r}: no such pack; shipped: {', '.join(available_packs())}")
        sources.append((f"policy pack {name!r}", path.read_text(encoding="utf-8")))
    for file in settings.files:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"policy file {file}: cannot read: {exc.strerror or exc}") from exc
        sources.append((f"policy file {file}", text))
    return sources


def load_terms(settings: PolicySettings) -> list[Term]:
    """All enabled terminology terms (packs, then files; `disabled_rules` may name term ids)."""
    terms: list[Term] = []
    seen: dict[str, str] = {}
    for where, text in _sources(settings):
        for term in parse_pack(text, where, settings).terms:
            if term.id in seen:
                raise PolicyError(f"{where}: term {term.id!r} field id: already defined in {seen[term.id]}")
            seen[term.id] = where
            if term.id not in settings.disabled_rules:
                terms.append(term)
    return terms


def load_rules(settings: PolicySettings) -> list[LoadedRule]:
    """All enabled rules in precedence order: packs as listed, then files as listed."""
    loaded: list[LoadedRule] = []
    seen: dict[str, str] = {}
    term_ids: set[str] = set()
    for where, text in _sources(settings):
        pack = parse_pack(text, where, settings)
        term_ids.update(t.id for t in pack.terms)
        for rule in pack.rules:
            if rule.id in seen:
                raise PolicyError(f"{where}: rule {rule.id!r} field id: already defined in {seen[rule.id]}")
            seen[rule.id] = where
            if rule.id not in settings.disabled_rules:
                loaded.append(LoadedRule(rule=rule, pack=pack.pack, order=len(loaded), source=where))
    known = set(seen)
    final = {lr.rule.id for lr in loaded if lr.rule.final}
    for lr in loaded:
        unknown = [r for r in lr.rule.overrides if r not in known]
        if unknown:
            raise PolicyError(f"{lr.source}: rule {lr.rule.id!r} field overrides: unknown rule id(s) {unknown}")
        locked = [r for r in lr.rule.overrides if r in final]
        if locked:
            raise PolicyError(f"{lr.source}: rule {lr.rule.id!r} field overrides: rule(s) {locked} are final")
    unknown_disabled = [r for r in settings.disabled_rules if r not in known and r not in term_ids]
    if unknown_disabled:
        raise PolicyError(f"policy settings: field disabled_rules: unknown rule id(s) {unknown_disabled}")
    return loaded
