"""`nuri scan`: JSON shape and offsets, table output, file input."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from nuri.privacy.cli import register

app = typer.Typer()


@app.callback()
def _root() -> None:
    """nuri"""


register(app)
RUNNER = CliRunner()
TEXT = "［대외비］ 김민수 고객님 ０１０-１２３４-５６７８, 우울증 진단"


def test_json_output_shape_and_offsets_in_the_input_as_given() -> None:
    result = RUNNER.invoke(app, ["scan", TEXT, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == {"entities", "classification"}
    for e in doc["entities"]:
        assert set(e) == {"type", "start", "end", "score", "evidence", "detail", "category"}
    spans = {e["type"]: TEXT[e["start"]:e["end"]] for e in doc["entities"]}
    assert spans == {"PERSON": "김민수", "PHONE": "０１０-１２３４-５６７８"}
    c = doc["classification"]
    assert c["n2sf_grade"] == "S" and c["entity_counts"] == {"PERSON": 1, "PHONE": 1}
    assert "health" in c["sensitive_topics"]
    assert "김민수" not in json.dumps(c, ensure_ascii=False)


def test_table_output_and_file_input(tmp_path: Path) -> None:
    f = tmp_path / "note.txt"
    f.write_text("연락처 010-1234-5678 [bold]x[/bold]", encoding="utf-8")
    result = RUNNER.invoke(app, ["scan", "--file", str(f)])
    assert result.exit_code == 0, result.output
    assert "PHONE" in result.output and "010-1234-5678" in result.output


def test_text_and_file_together_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x", encoding="utf-8")
    result = RUNNER.invoke(app, ["scan", "abc", "--file", str(f)])
    assert result.exit_code != 0
