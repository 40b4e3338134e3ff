"""Importers read tiny files written here in each benchmark's published layout; nothing is fetched."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nuri.evals.importers import click_items, haerae_items, import_suite, kmmlu_items, kobest_items
from nuri.evals.suite import load_suite, render


def _csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_kmmlu_csv_folder(tmp_path: Path) -> None:
    row = {"question": "다음 중 자산 계정은?", "answer": 2, "A": "매입채무", "B": "현금", "C": "자본금", "D": "매출",
           "Category": "Accounting", "Human Accuracy": 0.6}
    _csv(tmp_path / "data" / "Accounting-test.csv", [row, row | {"answer": 4}])
    _csv(tmp_path / "data" / "Accounting-dev.csv", [row])
    items = kmmlu_items(tmp_path / "data")
    assert [i["answer"] for i in items] == ["B", "D"]
    assert items[0]["choices"] == ["매입채무", "현금", "자본금", "매출"] and items[0]["id"] == "Accounting-0"


def test_kmmlu_parquet_file(tmp_path: Path) -> None:
    f = _parquet(tmp_path / "Law-test.parquet", [{"question": "q", "answer": 1, "A": "a", "B": "b", "C": "c",
                                                 "D": "d", "Category": "Law", "Human Accuracy": 0.5}])
    assert kmmlu_items(f)[0]["answer"] == "A"


def test_kobest_tasks(tmp_path: Path) -> None:
    _parquet(tmp_path / "boolq" / "test-00000-of-00001.parquet",
             [{"paragraph": "서울은 한국의 수도이다.", "question": "서울은 수도인가?", "label": 1}])
    _parquet(tmp_path / "copa" / "test-00000-of-00001.parquet",
             [{"premise": "비가 왔다.", "question": "결과", "alternative_1": "땅이 젖었다.",
               "alternative_2": "해가 떴다.", "label": 0}])
    _parquet(tmp_path / "hellaswag" / "test-00000-of-00001.parquet",
             [{"context": "c", "ending_1": "1", "ending_2": "2", "ending_3": "3", "ending_4": "4", "label": 3}])
    (tmp_path / "sentineg").mkdir()
    (tmp_path / "sentineg" / "test.jsonl").write_text(
        json.dumps({"sentence": "별로 재미없다", "label": 0}, ensure_ascii=False) + "\n", encoding="utf-8")
    _csv(tmp_path / "wic" / "test.csv", [{"word": "배", "context_1": "배가 고프다", "context_2": "배를 타다",
                                          "label": 0}])
    items = {i["task"]: i for i in kobest_items(tmp_path)}
    assert set(items) == {"boolq", "copa", "hellaswag", "sentineg", "wic"}
    assert items["boolq"]["answer"] == "B" and items["boolq"]["choices"] == ["아니오", "예"]
    assert "결과로" in items["copa"]["question"] and items["copa"]["answer"] == "A"
    assert items["hellaswag"]["answer"] == "D" and items["wic"]["choices"] == ["아니오", "예"]


def test_click_json_answer_text_becomes_letter(tmp_path: Path) -> None:
    rows = [{"id": "KIIP_economy_1", "paragraph": "", "question": "한국의 화폐 단위는?",
             "choices": ["엔", "원", "위안", "달러"], "answer": "원"}]
    f = tmp_path / "CLIcK" / "Culture" / "Economy" / "Economy_KIIP.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    items = click_items(tmp_path / "CLIcK")
    assert items == [{"id": "KIIP_economy_1", "question": "한국의 화폐 단위는?", "choices": ["엔", "원", "위안", "달러"],
                      "answer": "B"}]


def test_haerae_query_with_inline_options(tmp_path: Path) -> None:
    query = "다음 중 표준어는?\n(A) 삭월세\n(B) 사글세\n(C) 삭을세\n(D) 사글셋\n(E) 삯월세"
    _parquet(tmp_path / "standard_nomenclature" / "test-00000-of-00001.parquet",
             [{"query": query, "answer": "(B)", "options": None}])
    items = haerae_items(tmp_path)
    assert items[0]["answer"] == "B" and items[0]["n_choices"] == 5


def test_import_suite_writes_a_runnable_suite(tmp_path: Path) -> None:
    row = {"question": "q", "answer": 3, "A": "a", "B": "b", "C": "c", "D": "d", "Category": "Law",
           "Human Accuracy": 0.5}
    src = _csv(tmp_path / "src" / "Law-test.csv", [row])
    folder = import_suite("kmmlu", src, tmp_path / "evals", name="kmmlu-law", split="test")
    suite = load_suite(folder)
    assert suite.name == "kmmlu-law" and len(suite.items) == 1 and suite.license == "CC-BY-ND-4.0"
    assert "C. c" in render(suite.template, suite.items[0])
    with pytest.raises(ValueError, match="unknown benchmark"):
        import_suite("nope", src, tmp_path / "evals")


def test_import_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nuri.evals.__main__ import app

    src = _csv(tmp_path / "Law-test.csv", [{"question": "q", "answer": 1, "A": "a", "B": "b", "C": "c", "D": "d",
                                            "Category": "Law", "Human Accuracy": 0.5}])
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["eval", "import", "kmmlu", str(src), "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(app, ["eval", "suites", "--json", "--data-dir", str(data)])
    assert any(s["name"] == "kmmlu" and s["items"] == 1 for s in json.loads(listed.stdout))
