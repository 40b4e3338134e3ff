"""Inventory parsing: bad rows are reported with their row and field; good rows are still audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuri.config import ConfigError, parse_config
from nuri.workloads import load_inventory

YAML = """\
workloads:
  - name: civil-petitions
    owner: civil-affairs
    suites: {korean-knowledge: 0.6}
    monthly: {requests: 1000, input_tokens: 100000, output_tokens: 50000}
  - name: Bad Name
    owner: hr
  - name: hr
    latency_ms: fast
    data_categories: [personal, gossip]
  - name: translation
    monthly: {requests: 10}
    colour: blue
  - name: civil-petitions
"""

CSV = """\
name,owner,samples,data_categories,latency_ms,commercial,suites,requests,input_tokens,output_tokens,require_criteria
customer-service,retail,카드 결제 취소 | 계좌 이체,personal;credit_financial,2500,true,korean-knowledge>=0.6,"600,000",360000000,1000,red_teaming
credit-review,credit,,credit_financial,soon,true,korean-knowledge>=0.65,20000,100,100,
code-assistant,it,,,,maybe,code>=1.5,80000,100,100,

internal-search,knowledge,,,,true,,-5,100,100,
"""


def test_yaml_bad_rows_are_reported_by_line_and_field_and_good_rows_kept(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(YAML, encoding="utf-8")
    inv = load_inventory(path)
    assert [w.name for w in inv.workloads] == ["civil-petitions"]
    found = {(e.row, e.field) for e in inv.errors}
    assert (6, "name") in found                           # "Bad Name" starts on line 6
    assert (8, "latency_ms") in found and (8, "data_categories") in found
    assert (11, "colour") in found
    assert any(e.row == 14 and e.field == "name" and "repeats the workload of row 2" in e.message
               for e in inv.errors)
    assert "gossip" in next(e.message for e in inv.errors if e.field == "data_categories")


def test_csv_bad_cells_name_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    path.write_text(CSV, encoding="utf-8")
    inv = load_inventory(path)
    good = {w.name: w for w in inv.workloads}
    assert set(good) == {"customer-service"}
    cs = good["customer-service"]
    assert cs.samples == ["카드 결제 취소", "계좌 이체"] and cs.data_categories == ["personal", "credit_financial"]
    assert cs.monthly.requests == 600_000 and cs.procurement.require == ["red_teaming"]
    assert cs.suites[0].suite == "korean-knowledge" and cs.suites[0].min_score == 0.6
    errors = {(e.row, e.field, e.name) for e in inv.errors}
    assert (3, "latency_ms", "credit-review") in errors
    assert (4, "commercial", "code-assistant") in errors
    assert (4, "suites.0.min_score", "code-assistant") in errors
    assert (6, "requests", "internal-search") in errors      # the blank line 5 is skipped, numbering is the file's


def test_unknown_csv_column_is_an_error_but_rows_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    path.write_text("name,owner,budget\nhelpdesk,it,100\n", encoding="utf-8")
    inv = load_inventory(path)
    assert [w.name for w in inv.workloads] == ["helpdesk"]
    assert [(e.row, e.field) for e in inv.errors] == [(1, "budget")]


def test_unreadable_and_invalid_files_are_one_error(tmp_path: Path) -> None:
    assert load_inventory(tmp_path / "missing.yaml").errors[0].field == "file"
    broken = tmp_path / "broken.yaml"
    broken.write_text("workloads: [name: {", encoding="utf-8")
    inv = load_inventory(broken)
    assert not inv.workloads and inv.errors[0].field == "file"


def test_serve_refuses_an_inventory_with_bad_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.yaml").write_text(YAML, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        parse_config("workloads: {inventory: inv.yaml}")
    assert "row 8 (hr), latency_ms" in str(err.value)
    (tmp_path / "ok.yaml").write_text(YAML.split("  - name: Bad Name")[0], encoding="utf-8")
    cfg = parse_config("workloads: {inventory: ok.yaml, items: [{name: inline}]}")
    assert [w.name for w in cfg.workloads.all] == ["inline", "civil-petitions"]
    with pytest.raises(ConfigError, match="unknown key 'inventroy'"):
        parse_config("workloads: {inventroy: ok.yaml}")
