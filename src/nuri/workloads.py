"""Workloads as config: the `workloads:` section of nuri.yaml and the routing file it loads.

A workload is declared inline (`workloads: [{name: …}]`) or in an inventory file (YAML or CSV,
`workloads: {inventory: FILE}`); `nuri plan audit` turns the inventory into a routing file
(`workloads: {routes: FILE}`), which gives each planned workload the alias `workload:<name>`
listing its deployments in the planned order. Paths are relative to the working directory.

Like every config section, unknown keys are refused. This module depends on pydantic and
PyYAML alone, because `nuri.config` imports it; planning (`nuri.planning`) builds on it.

Inventories: Read a workload inventory (YAML or CSV): good rows become Workloads, bad rows are reported.

An inventory is usually a spreadsheet kept by people, so one wrong cell must not stop the audit
of every other use case: each bad row is reported with its row number (the line in the file)
and field, and the good rows are still processed.

CSV columns are the workload fields; lists are separated by `;`, samples by `|`, and
`suites` reads `name>=0.7; other>=0.5`. The volume columns are `requests`, `input_tokens`,
`output_tokens`; procurement needs are `min_procurement_score` and `require_criteria`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

WORKLOAD_PREFIX = "workload:"
# The categories a workload may declare: the classifier's PIPA categories (privacy.types.PipaCategory).
DATA_CATEGORIES = ("unique_identification", "sensitive", "personal", "credit_financial", "secret")
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when present: a large routing file loads fast


class SuiteBar(BaseModel):
    """An eval suite that measures the workload, and the score it must reach with confidence."""

    model_config = ConfigDict(extra="forbid")
    suite: str = Field(min_length=1)
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="the 95% interval's lower bound must reach it")


class Volume(BaseModel):
    """Monthly volume: what the cost of each deployment is computed from."""

    model_config = ConfigDict(extra="forbid")
    requests: int = Field(0, ge=0)
    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)


class ProcurementNeed(BaseModel):
    """What a deployment's procurement scorecard must show before it may serve the workload."""

    model_config = ConfigDict(extra="forbid")
    min_score: float | None = Field(None, ge=0.0, le=1.0, description="weighted scorecard total, 0-1")
    require: list[str] = Field(default_factory=list, description="criteria that must be fully met")


class Workload(BaseModel):
    """One use case of the organisation, as the audit and the router see it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    owner: str = Field("", description="owner team")
    description: str = ""
    samples: list[str] = Field(default_factory=list, description="typical prompts, classified like live traffic")
    data_categories: list[str] = Field(default_factory=list, description="declared PIPA categories")
    entity_types: list[str] = Field(default_factory=list, description="declared entity types (KR_RRN, CARD, …)")
    topics: list[str] = Field(default_factory=list, description="declared sensitive topics (health, …)")
    n2sf_grade: Literal["C", "S", "O"] | None = Field(None, description="public sector: the data's N2SF grade")
    latency_ms: float | None = Field(None, gt=0, description="p95 latency target, milliseconds")
    languages: list[str] = Field(default_factory=list, description="e.g. ko, en")
    domain: list[str] = Field(default_factory=list, description="domain tags: lending, hiring, public_decision, …")
    commercial: bool = Field(True, description="used for a commercial purpose (licences that forbid it fail)")
    suites: list[SuiteBar] = Field(default_factory=list)
    monthly: Volume = Field(default_factory=Volume)
    procurement: ProcurementNeed = Field(default_factory=ProcurementNeed)
    deployments: list[str] | None = Field(None, description="only these deployments are candidates")
    tags: list[str] = Field(default_factory=list, description="caller tags policy rules read (e.g. consent)")

    @field_validator("domain", "languages", "tags", "deployments", "samples", "data_categories",
                     "entity_types", "topics", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("suites", mode="before")
    @classmethod
    def _suite_shorthand(cls, value: Any) -> Any:
        """`[name, …]`, `{name: bar}` or `[{suite, min_score}]`."""
        if isinstance(value, dict):
            return [{"suite": k, "min_score": v} for k, v in value.items()]
        if isinstance(value, list):
            return [{"suite": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("data_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        value = [v.strip().lower() for v in value]
        unknown = [v for v in value if v not in DATA_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown data categor(y/ies) {unknown}; known: {', '.join(DATA_CATEGORIES)}")
        return value

    @field_validator("entity_types")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.strip().upper() for v in value]

    @field_validator("domain", "topics", "languages")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]

    @property
    def alias(self) -> str:
        return WORKLOAD_PREFIX + self.name


class PlannedCandidate(BaseModel):
    """One deployment's standing in a workload's plan: what the eval strategy orders by."""

    model_config = ConfigDict(extra="forbid")
    deployment: str
    meets_bar: bool
    score: float | None = None
    ci_low: float | None = None
    monthly_cost: float | None = None
    p95_ms: float | None = None
    note: str = ""


class PlannedWorkload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidates: list[str] = Field(description="eligible deployments, recommended first")
    recommended: str | None = None
    why: str = ""
    excluded: dict[str, str] = Field(default_factory=dict, description="deployment → why it may not serve")
    scores: list[PlannedCandidate] = Field(default_factory=list)


class RoutingPlan(BaseModel):
    """The routing file `nuri plan audit` writes and `nuri serve` loads."""

    model_config = ConfigDict(extra="forbid")
    nuri_routing_plan: Literal[1] = 1
    home_jurisdiction: str = "KR"
    currency: str = "USD"
    workloads: dict[str, PlannedWorkload] = Field(default_factory=dict)

    @field_validator("workloads")
    @classmethod
    def _names(cls, value: dict[str, PlannedWorkload]) -> dict[str, PlannedWorkload]:
        import re

        bad = [n for n in value if not re.match(NAME_PATTERN, n)]
        if bad:
            raise ValueError(f"workload names must match {NAME_PATTERN}; got {bad}")
        return value


def load_routing_plan(path: str | Path) -> RoutingPlan:
    """Read a routing file; raises ValueError naming the file."""
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"routing file {path}: {exc}") from exc
    try:
        return RoutingPlan.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"routing file {path}: {exc}") from exc


class WorkloadSettings(BaseModel):
    """`workloads:` — a list of workloads, or a mapping with `items`, `inventory`, `routes`, `scorecard`."""

    model_config = ConfigDict(extra="forbid")
    items: list[Workload] = Field(default_factory=list, description="workloads declared inline")
    inventory: str | None = Field(None, description="an inventory file (YAML or CSV) of more workloads")
    routes: str | None = Field(None, description="a routing file written by `nuri plan audit`")
    scorecard: str | None = Field(None, description="procurement criteria and weights (YAML)")
    _loaded: list[Workload] = PrivateAttr(default_factory=list)
    _plan: RoutingPlan | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _list_form(cls, value: Any) -> Any:
        return {"items": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _load_files(self) -> WorkloadSettings:
        loaded = list(self.items)
        if self.inventory:
            result = load_inventory(self.inventory)
            if result.errors:
                raise ValueError(f"inventory {self.inventory}: " + "; ".join(str(e) for e in result.errors))
            loaded.extend(result.workloads)
        names = [w.name for w in loaded]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"workload names must be unique; repeated: {', '.join(repeated)}")
        self._loaded = loaded
        self._plan = load_routing_plan(self.routes) if self.routes else None
        return self

    @property
    def all(self) -> list[Workload]:
        """Inline workloads, then the inventory's."""
        return list(self._loaded)

    @property
    def plan(self) -> RoutingPlan | None:
        return self._plan

    def get(self, name: str) -> Workload | None:
        for w in self._loaded:
            if w.name == name:
                return w
        return None

    def aliases(self) -> dict[str, list[str]]:
        """`workload:<name>` → the planned deployments, recommended first (planned workloads only)."""
        if self._plan is None:
            return {}
        return {WORKLOAD_PREFIX + name: list(p.candidates) for name, p in self._plan.workloads.items()
                if p.candidates}


# -- inventories -------------------------------------------------------------------------------

LIST_COLUMNS = ("data_categories", "entity_types", "topics", "languages", "domain", "deployments", "tags",
                "require_criteria")
SCALAR_COLUMNS = ("name", "owner", "description", "n2sf_grade", "latency_ms", "commercial")
VOLUME_COLUMNS = ("requests", "input_tokens", "output_tokens")
CSV_COLUMNS = (*SCALAR_COLUMNS, "samples", "suites", *LIST_COLUMNS, *VOLUME_COLUMNS, "min_procurement_score")


@dataclass(frozen=True, slots=True)
class RowError:
    row: int          # line of the file where the row starts (CSV header: 1)
    field: str
    message: str
    name: str = ""    # the row's workload name, when it has one

    def __str__(self) -> str:
        who = f" ({self.name})" if self.name else ""
        return f"row {self.row}{who}, {self.field}: {self.message}"


@dataclass(slots=True)
class Inventory:
    workloads: list[Workload] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def load_inventory(path: str | Path) -> Inventory:
    """Parse by extension: .csv is CSV, anything else YAML. A file that cannot be read at all is
    one error at row 0."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        return Inventory(errors=[RowError(0, "file", f"cannot read {path}: {exc.strerror or exc}")])
    if path.suffix.lower() == ".csv":
        return parse_csv(text)
    return parse_yaml(text)


def parse_yaml(text: str) -> Inventory:
    """A list of workloads, or a mapping with a `workloads:` list; rows are numbered by line."""
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return Inventory(errors=[RowError(mark.line + 1 if mark else 0, "file", f"not valid YAML: {exc}")])
    finally:
        loader.dispose()
    node = root
    if isinstance(data, dict):
        if set(data) != {"workloads"}:
            extra = sorted(set(data) - {"workloads"})
            return Inventory(errors=[RowError(1, "file", f"expected only a 'workloads' list; unknown keys {extra}")])
        data = data["workloads"]
        node = next(v for k, v in root.value if k.value == "workloads")  # type: ignore[union-attr]
    if data is None:
        return Inventory()
    if not isinstance(data, list) or node is None:
        return Inventory(errors=[RowError(1, "file", "expected a list of workloads")])
    rows = [(item_node.start_mark.line + 1, item) for item_node, item in zip(node.value, data, strict=True)]
    return _validate(rows)


def parse_csv(text: str) -> Inventory:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [c for c in header if c and c.strip() not in CSV_COLUMNS]
    errors = [RowError(1, c, f"unknown column; known: {', '.join(CSV_COLUMNS)}") for c in unknown]
    rows: list[tuple[int, dict[str, Any]]] = []
    for record in reader:
        # the record's first line: its last line less the line breaks inside quoted cells
        start = reader.line_num - sum(v.count("\n") for v in record.values() if isinstance(v, str))
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue                                   # a blank line of the spreadsheet
        if None in record:
            errors.append(RowError(start, "row", "more cells than columns", (record.get("name") or "").strip()))
            continue
        rows.append((start, _from_cells({k.strip(): v for k, v in record.items() if k and k.strip() not in unknown})))
    inventory = _validate(rows)
    inventory.errors[:0] = errors
    return inventory


def _split(cell: str, sep: str = ";") -> list[str]:
    return [p.strip() for p in cell.split(sep) if p.strip()]


def _from_cells(cells: dict[str, str | None]) -> dict[str, Any]:
    """CSV cells → the shape Workload validates; empty cells are left out (defaults apply)."""
    out: dict[str, Any] = {}
    volume: dict[str, str] = {}
    procurement: dict[str, Any] = {}
    for key, raw in cells.items():
        value = (raw or "").strip()
        if not value:
            continue
        if key in VOLUME_COLUMNS:
            volume[key] = value.replace(",", "").replace("_", "")
        elif key == "min_procurement_score":
            procurement["min_score"] = value
        elif key == "require_criteria":
            procurement["require"] = _split(value)
        elif key == "samples":
            out[key] = _split(value, "|")
        elif key == "suites":
            out[key] = [_suite_cell(p) for p in _split(value)]
        elif key in LIST_COLUMNS:
            out[key] = _split(value)
        else:
            out[key] = value
    if volume:
        out["monthly"] = volume
    if procurement:
        out["procurement"] = procurement
    return out


def _suite_cell(part: str) -> dict[str, str]:
    name, _, bar = part.partition(">=")
    return {"suite": name.strip(), "min_score": bar.strip()} if bar else {"suite": name.strip()}


_CSV_FIELD: dict[tuple[Any, ...], str] = {("monthly", k): k for k in VOLUME_COLUMNS} | {
    ("procurement", "min_score"): "min_procurement_score", ("procurement", "require"): "require_criteria"}


def _validate(rows: list[tuple[int, Any]]) -> Inventory:
    out = Inventory()
    seen: dict[str, int] = {}
    for line, item in rows:
        name = str(item.get("name") or "") if isinstance(item, dict) else ""
        if not isinstance(item, dict):
            out.errors.append(RowError(line, "row", "expected a mapping of workload fields"))
            continue
        try:
            workload = Workload.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                where = _CSV_FIELD.get(loc[:2]) or ".".join(str(p) for p in loc) or "row"
                message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
                out.errors.append(RowError(line, where, message, name))
            continue
        if workload.name in seen:
            out.errors.append(RowError(line, "name", f"repeats the workload of row {seen[workload.name]}", name))
            continue
        seen[workload.name] = line
        out.workloads.append(workload)
    return out
