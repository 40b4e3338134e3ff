"""nuri.yaml → typed settings. The one place that reads the environment.

The YAML is parsed first; then `${VAR}` and `${VAR:-default}` are substituted from the
environment inside string values only, so secrets stay out of the file and a variable's value can
never add keys or comment out the rest of a line. Every section refuses keys it does not know,
because a misspelt key would otherwise switch a setting (a policy pack, say) silently off. An
invalid file raises `ConfigError` whose message names the field and why, and `nuri serve` stops
with it.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nuri.catalog import Deployment, Hosting, Procurement
from nuri.rag.settings import RagSettings
from nuri.workloads import WorkloadSettings

DEFAULT_DEPLOYMENT_ID = "local-gemma"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which field and why.

    `problems` holds one `path: why` line per error, for `nuri config check` to list."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message.removeprefix("invalid config: ")]


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="larger request bodies get 413")
    allow_open_non_loopback: bool = Field(False, description="serve without keys on a non-loopback address")
    max_concurrent_per_key: int = Field(
        64, ge=0,
        description="requests one key (or, without keys, the open gateway) may have in flight on this replica; "
        "more get 429 with Retry-After; 0 turns the limit off",
    )
    classify_inline_max_bytes: int = Field(
        32 * 1024, ge=0,
        description="request bodies up to this size are classified on the event loop; larger ones (or of "
        "unknown size) on a worker thread, so a long scan does not stall other requests",
    )


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n2sf_markings: dict[str, str] = Field(default_factory=dict, description="extra marking → grade C/S/O")
    surrogates: bool = Field(False, description="format-preserving surrogates instead of <TYPE_n>")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="entities scoring below this are not reported")
    person_model: str = Field("rules", pattern="^(rules|kiwi)$",
                              description="rules (fast) or kiwi: confirm weak name candidates with kiwipiepy")
    person_threshold: float = Field(
        0.5, ge=0.0, le=1.0,
        description="the learned name tagger reports names it alone finds from this probability up "
                    "(0.5: PERSON F1 0.82 at precision 0.89 on held-out KLUE text, against 0.54 for rules "
                    "alone); 1.0 switches the tagger off and leaves names to the rules (titles, labels, "
                    "honorifics)",
    )
    disabled_entities: list[str] = Field(default_factory=list, description="entity types not to detect")
    irreversible_types: list[str] = Field(
        default_factory=lambda: ["KR_RRN", "KR_FRN"],
        description="entity types masked as <TYPE_REDACTED> and never restored (PIPA Art. 24-2)",
    )
    guard_hold_chars: int = Field(
        96, ge=16, le=4096, description="streaming reply guard: most characters held back as a tail"
    )
    guard_min_score: float = Field(
        0.6, ge=0.0, le=1.0,
        description="reply guard: entities scored below this are not masked (a bare three-syllable word "
                    "that might be a name scores 0.5; masking those would garble ordinary replies)",
    )
    max_scan_chars: int = Field(
        1_000_000, gt=0, description="most characters of text one request may carry to be scanned")
    over_limit: str = Field(
        "refuse", pattern="^(refuse|keep_home)$",
        description="a request over max_scan_chars: refuse (413), or keep_home: scan up to the limit and "
        "route only to domestic deployments in the home jurisdiction, as unscanned content",
    )
    scan_cache_size: int = Field(
        16384, ge=0,
        description="classification cache for strings seen before (a conversation's history): entries by a "
        "keyed hash, no text stored; an entry counts one plus its findings; 0 turns it off",
    )


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packs: list[str] = Field(default_factory=lambda: ["kr-pipa"])
    files: list[str] = Field(default_factory=list, description="extra policy YAML files")
    enabled: bool = True
    home_jurisdiction: str = Field(
        "KR", pattern=r"^[A-Z]{2}$", description="the country packs call domestic ($home in rules)"
    )
    params: dict[str, list[str] | str] = Field(
        default_factory=dict, description="values for $name references in packs (e.g. approved_model_versions)"
    )
    disabled_rules: list[str] = Field(default_factory=list, description="rule ids switched off by the operator")


class RoutingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str = "priority"
    retries: int = Field(2, ge=0, description="extra attempts after the first, across the eligible set")
    backoff_seconds: float = Field(0.05, ge=0)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_seconds: float = Field(30.0, gt=0)
    ewma_alpha: float = Field(0.3, gt=0, le=1, description="weight of the newest latency sample")
    expected_completion_tokens: int = Field(256, ge=0, description="output tokens the cost strategy assumes")
    tier_strategies: dict[str, str] = Field(
        default_factory=dict, description="latency tier → strategy, e.g. {interactive: latency}"
    )


class LedgerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    database_url: str | None = Field(None, description="default: SQLite file in the data directory")
    redis_url: str | None = None
    db_schema: str | None = Field(None, description="PostgreSQL schema (created if missing); default: search_path")
    redis_prefix: str = Field("nuri:", description="prefix of every Redis key the ledger writes")
    counters: str = Field(
        "auto",
        pattern=r"^(auto|memory|database|redis)$",
        description="where rate and budget counters live; auto: redis if redis_url, memory on SQLite, else database",
    )
    durability: str = Field(
        "process",
        pattern=r"^(fsync|process)$",
        description="process (default): an acknowledged request's audit record is in this replica's local audit spool (one write(), no flush), which "
        "survives a gateway crash (kill -9) but not a power loss of the host, and a background task ships "
        "it into the chain a moment later; a restarted replica ships what its spool still holds. fsync: the "
        "record is committed to the database and on disk before the request is acknowledged",
    )
    recovery_wait_seconds: float = Field(
        10.0, ge=0, description="at start, how long to wait for spools of stopped replicas to ship before serving")
    spool_dir: str | None = Field(
        None, description="durability process: where audit spools live; default: "
        "<data dir>/audit-spool (give each replica persistent storage)")
    budget_period: str = Field("month", pattern=r"^(day|month|total)$")
    budget_warning_ratio: float = Field(0.8, gt=0, le=1, description="spend share that sets the warning flag")
    checkpoint_every: int = Field(1000, ge=1, description="records between signed checkpoints")
    checkpoint_seconds: float = Field(60.0, gt=0, description="longest time between signed checkpoints")
    retention_days: int | None = Field(None, ge=1, description="`nuri audit prune` drops older records")
    batch_max: int = Field(512, ge=1, description="most audit records in one group commit")
    key_cache_lease_seconds: float = Field(
        0.25, ge=0, le=5,
        description="how long a replica may trust its cached key rows without confirming the key epoch "
        "with the database; 0 turns the cache off (every request reads its key). Revoking a key waits this "
        "long (and a 10 % margin) before it returns, so a revocation holds from the next request on every replica",
    )
    key_poll_seconds: float = Field(
        0.1, gt=0, le=1,
        description="how often each replica reads the key epoch; well under the lease, so the lease rarely lapses while "
        "requests come",
    )
    auth_failure_limit: int = Field(
        30, ge=0,
        description="refused credentials one client address may send per window before its requests get 429 "
        "until the window ends (per replica); 0 turns the limit off",
    )
    auth_failure_window_seconds: float = Field(
        60.0, gt=0,
        description="the window of auth_failure_limit, and the period of the audit records that summarise "
        "refused credentials (one record per client address and window instead of one per request)",
    )
    counter_lease_share: float = Field(
        0.01, ge=0, le=0.5,
        description="Redis counters: the largest share of a limit one replica may lease at once, so that "
        "admissions within the lease need no round trip; 0 turns leasing off (one round trip per admission)",
    )


class MoneySettings(BaseModel):
    """One currency for budgets, reported costs and the cost strategy, and the rates into it."""

    model_config = ConfigDict(extra="forbid")
    currency: str | None = Field(
        None, pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code budgets and costs are kept in; default: the one currency every priced "
        "deployment uses (USD when none is priced)")
    rates: dict[str, float] = Field(
        default_factory=dict,
        description="what one unit of another currency is worth in `currency`, e.g. {KRW: 0.00072} for a "
        "USD budget; a priced deployment in a currency without a rate is a config error")

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(f"{code!r} is not an ISO 4217 currency code")
            if not rate > 0:
                raise ValueError(f"the rate of {code} must be positive")
        return value

    def rate(self, currency: str) -> float | None:
        """One unit of `currency` in the budget currency, or None when no rate is known."""
        return 1.0 if currency == self.currency else self.rates.get(currency)

    def convert(self, amount: float, currency: str) -> float:
        rate = self.rate(currency)
        if rate is None:
            raise ValueError(f"no exchange rate from {currency} to {self.currency}")
        return amount * rate

    def settle(self, deployments: list[Deployment]) -> None:
        """Fix the budget currency and give every price its rate; a priced deployment whose
        currency has no rate is an error naming it (a won must never be added to a dollar)."""
        priced = [d for d in deployments if not d.price.free]
        if self.currency is None:
            used = sorted({d.price.currency for d in priced})
            if len(used) > 1:
                first = next(d for d in priced if d.price.currency == used[0])
                other = next(d for d in priced if d.price.currency != used[0])
                raise ValueError(
                    f"deployment {other.id!r} is priced in {other.price.currency} and deployment {first.id!r} in "
                    f"{first.price.currency}: declare money.currency (the budget currency) and money.rates")
            self.currency = used[0] if used else "USD"
        for d in deployments:
            rate = self.rate(d.price.currency)
            if rate is None and not d.price.free:
                raise ValueError(
                    f"deployment {d.id!r} is priced in {d.price.currency} but budgets are in {self.currency} and "
                    f"money.rates has no {d.price.currency} rate")
            d.price.set_rate(rate if rate is not None else 1.0)


class ConversationSettings(BaseModel):
    """Responses API state kept for `previous_response_id` (gateway/conversations.py)."""

    model_config = ConfigDict(extra="forbid")
    retention_days: float = Field(30, gt=0, description="stored responses older than this are deleted")
    memory_max_entries: int = Field(
        10_000, ge=1, description="with the ledger disabled, most responses kept in memory (oldest dropped)")


LabelMode = typing.Literal["header", "event", "text", "field"]
LabelLanguage = typing.Literal["rule", "ko", "en", "both", "request"]
_LABEL_CHANNELS = ("chat", "completions", "responses", "messages")


class LabelText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ko: str = Field("이 응답은 생성형 인공지능이 작성했습니다.", min_length=1)
    en: str = Field("This response was generated by AI.", min_length=1)


class LabelStyle(BaseModel):
    """How a team's or a channel's replies carry the notice; unset fields inherit."""

    model_config = ConfigDict(extra="forbid")
    modes: list[LabelMode] | None = Field(
        None, description="header: x-nuri-ai-notice; event: the first streamed event (a body field when not "
        "streamed); text: appended to the reply text; field: nuri.notice in the body (the last streamed event)")
    language: LabelLanguage | None = Field(
        None, description="rule: the label rule's own message; ko, en, both (ko then en); request: the "
        "request's language (ko when it is mostly Korean, else en)")
    text: LabelText | None = None


class LabelSettings(LabelStyle):
    """The AI Basic Act notice on replies a `label` rule matched (replies: label:)."""

    modes: list[LabelMode] | None = Field(default_factory=lambda: list[LabelMode](["field"]))
    language: LabelLanguage | None = "rule"
    text: LabelText | None = Field(default_factory=LabelText)
    teams: dict[str, LabelStyle] = Field(default_factory=dict, description="per team; wins over channels")
    channels: dict[str, LabelStyle] = Field(
        default_factory=dict, description="per API the reply goes out on: chat, completions, responses, messages")

    @model_validator(mode="after")
    def _known_channels(self) -> LabelSettings:
        unknown = sorted(set(self.channels) - set(_LABEL_CHANNELS))
        if unknown:
            raise ValueError(f"unknown label channel(s) {unknown}; known: {', '.join(_LABEL_CHANNELS)}")
        return self


class LanguageSettings(BaseModel):
    """Language fidelity: a reply in a language the request is not written in is flagged."""

    model_config = ConfigDict(extra="forbid")
    check: bool = True
    retry: bool = Field(False, description="retry a non-streamed reply once on the next eligible deployment")
    min_letters: int = Field(12, ge=1, description="replies with fewer letters are not judged")
    min_share: float = Field(
        0.2, ge=0.0, le=1.0, description="a reply language the request writes less than this share of is a miss")


class ReplySettings(BaseModel):
    """What every reply owes besides privacy: the AI notice and the asked-for language
    (terminology comes from policy packs: `terms:` in kr-terminology or a glossary file)."""

    model_config = ConfigDict(extra="forbid")
    label: LabelSettings = Field(default_factory=LabelSettings)
    language: LanguageSettings = Field(default_factory=LanguageSettings)


class NuriConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployments: list[Deployment] = Field(default_factory=list)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    server: ServerSettings = Field(default_factory=ServerSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    workloads: WorkloadSettings = Field(default_factory=WorkloadSettings)
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    rag: RagSettings = Field(default_factory=RagSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    money: MoneySettings = Field(default_factory=MoneySettings)

    @model_validator(mode="after")
    def _defaults_and_references(self) -> NuriConfig:
        if not self.deployments:
            self.deployments = [default_embedded_deployment()]
        self.money.settle(self.deployments)
        ids = [d.id for d in self.deployments]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"deployment ids must be unique; repeated: {', '.join(duplicates)}")
        for alias, targets in self.workloads.aliases().items():   # planned workloads: workload:<name>
            self.aliases.setdefault(alias, targets)
        if "default" not in self.aliases:
            self.aliases["default"] = [ids[0]]
        for alias, targets in self.aliases.items():
            if alias in ids:
                raise ValueError(f"alias {alias!r} has the same name as a deployment")
            missing = [t for t in targets if t not in ids]
            if missing or not targets:
                raise ValueError(f"alias {alias!r} names unknown deployments: {missing or 'none given'}")
        return self

    def deployment(self, deployment_id: str) -> Deployment:
        for d in self.deployments:
            if d.id == deployment_id:
                return d
        raise KeyError(deployment_id)


def default_embedded_deployment() -> Deployment:
    return Deployment(
        id=DEFAULT_DEPLOYMENT_ID,
        provider="llamacpp",
        model="gemma-3-270m",
        jurisdiction=os.environ.get("NURI_HOME_JURISDICTION", "KR"),
        hosting=Hosting.ON_PREM,
        license="Gemma Terms of Use",
        commercial_use=True,
        context_window=8192,
        procurement=Procurement(vendor="Google (open weights)", country_of_vendor="US"),
    )


def substitute_env(text: str, env: typing.Mapping[str, str] | None = None, where: str = "") -> str:
    """Replace ${VAR} / ${VAR:-default} in one string; an unset variable without a default is an error."""
    env = os.environ if env is None else env

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        at = f" (at {where})" if where else ""
        raise ConfigError(f"invalid config: environment variable {name} is referenced{at} but not set")

    return _ENV_REF.sub(repl, text)


def substitute_tree(node: Any, env: typing.Mapping[str, str] | None = None, where: str = "") -> Any:
    """Substitute inside the string values of parsed YAML. Keys and structure come from the file
    alone: a value holding a newline, `#` or `key: value` stays one string value."""
    if isinstance(node, str):
        return substitute_env(node, env, where) if "${" in node else node
    if isinstance(node, dict):
        return {k: substitute_tree(v, env, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_tree(v, env, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def _model_at(loc: list[Any]) -> type[BaseModel] | None:
    """The settings class that a validation error's location (without its last key) points into."""
    current: Any = NuriConfig
    for key in loc:
        if isinstance(key, int):
            continue                      # list items: the item type was taken with the field
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or key not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[key].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """The model class inside `X | None`, `list[X]`: what a nested section is validated as."""
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _unknown_key(loc: list[Any]) -> str:
    """`unknown key 'pakcs' in policy; did you mean 'packs'?`, with the valid keys when none is close."""
    key, section = str(loc[-1]), ".".join(str(k) for k in loc[:-1] if not isinstance(k, int)) or "the top level"
    model = _model_at(list(loc[:-1]))
    valid = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} in {section}; did you mean {close[0]!r}?"
    return f"unknown key {key!r} in {section}" + (f"; valid keys: {', '.join(valid)}" if valid else "")


def _describe(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    """One `path: why` line per validation error, paths with deployment ids."""
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        parts: list[str] = []
        node: Any = raw
        for key in loc:
            if isinstance(key, int) and isinstance(node, list) and key < len(node):
                node = node[key]
                ident = node.get("id") if isinstance(node, dict) else None
                parts.append(f"[{key}]" + (f"(id={ident})" if ident else ""))
            else:
                node = node.get(key) if isinstance(node, dict) else None
                parts.append(f".{key}" if parts else str(key))
        where = "".join(parts) or "(top level)"
        message = _unknown_key(loc) if item["type"] == "extra_forbidden" and loc else item["msg"]
        lines.append(f"{where}: {message}")
    return lines


def parse_config(text: str, source: str = "the config", env: typing.Mapping[str, str] | None = None) -> NuriConfig:
    """Validate config text: YAML first, then ${VAR} inside string values, then the settings."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        hint = ("; a ${VAR} inside [ ] or { } must be quoted: '${VAR}'"
                if "${" in text and ("[" in text or "{" in text.replace("${", "")) else "")
        raise ConfigError(f"invalid config: {source} is not valid YAML: {exc}{hint}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config: {source} must hold a mapping at the top level")
    raw = substitute_tree(raw, env)
    try:
        return NuriConfig.model_validate(raw)
    except ValidationError as exc:
        problems = _describe(exc, raw)
        raise ConfigError("invalid config: " + "; ".join(problems), problems) from exc


def load_config(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None) -> NuriConfig:
    """Read and validate a config file; no file means the embedded model alone."""
    if path is None:
        return NuriConfig()
    return parse_config(Path(path).read_text(encoding="utf-8"), str(path), env)


def data_dir(explicit: str | Path | None = None) -> Path:
    """--data-dir, else NURI_DATA_DIR, else .nuri/ in the working directory."""
    chosen = explicit or os.environ.get("NURI_DATA_DIR") or ".nuri"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir(base: Path | None = None) -> Path:
    """Where assembled model files live: NURI_MODELS_DIR, else <data dir>/models.

    Several data directories (tests, replicas) can share one copy of the weights this way."""
    chosen = os.environ.get("NURI_MODELS_DIR")
    return Path(chosen).expanduser().resolve() if chosen else (base or data_dir()) / "models"


def admin_key() -> str | None:
    return os.environ.get("NURI_ADMIN_KEY") or None


def env(name: str, default: str | None = None) -> str | None:
    """Read a NURI_* setting; kept here so the environment is read in one place."""
    return os.environ.get(name, default)
