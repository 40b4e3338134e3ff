"""`nuri scan [TEXT | --file F] [--json]`: what Nuri finds in a text, as a table or JSON.

The user's own text is shown back to them (that is the point of the command); the
`classification` block holds types and counts only, like every record that leaves a request.
Offsets are in characters of the input as given. Each entity carries its score, its evidence
and a `detail` saying which checks held or failed ("shape+cue, checksum fails"), never the value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the scanner loads its tables on import: only when a command runs
    from nuri.privacy.scanner import Scanner
    from nuri.privacy.types import Classification, Entity


def scan_result(text: str, scanner: Scanner | None = None) -> dict[str, Any]:
    """The `--json` document for `text`."""
    from nuri.privacy.scanner import Scanner

    classification: Classification = (scanner or Scanner()).classify_text(text)
    return {
        "entities": [_entity_json(e) for e in classification.entities],
        "classification": classification.summary(),
    }


def _entity_json(e: Entity) -> dict[str, Any]:
    return {
        "type": e.type,
        "start": e.start,
        "end": e.end,
        "score": e.score,
        "evidence": e.evidence.value,
        "detail": e.detail,
        "category": e.category.value,
    }


def _read_input(text: str | None, file: Path | None) -> str:
    if text is not None and file is not None:
        raise typer.BadParameter("give TEXT or --file, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc}") from exc
    if text is not None:
        return text
    if not sys.stdin.isatty():
        return sys.stdin.read()
    raise typer.BadParameter("give TEXT, --file F, or pipe text on stdin")


def scan_command(text: str | None = None, file: Path | None = None, json_out: bool = False,
                 person_threshold: float | None = None) -> None:
    """Scan TEXT (or a file, or stdin) for personal data and classification signals."""
    content = _read_input(text, file)
    scanner = None
    if person_threshold is not None:
        from nuri.config import PrivacySettings
        from nuri.privacy.scanner import Scanner

        scanner = Scanner(PrivacySettings(person_threshold=person_threshold))
    result = scan_result(content, scanner)
    if json_out:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    _print_table(content, result)


def _print_table(content: str, result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(title=f"{len(result['entities'])} entities")
    for col in ("type", "span", "value", "score", "evidence", "detail", "category"):
        table.add_column(col)
    for e in result["entities"]:
        table.add_row(e["type"], f"{e['start']}–{e['end']}", Text(content[e["start"]:e["end"]]),
                      f"{e['score']:.2f}", e["evidence"], Text(e["detail"]), e["category"])
    console.print(table)
    c = result["classification"]
    console.print(
        f"N2SF grade [bold]{c['n2sf_grade']}[/bold]"
        + (f" (markings: {', '.join(c['markings'])})" if c["markings"] else "")
        + f" · categories: {', '.join(c['categories']) or 'none'}"
        + f" · sensitive topics: {', '.join(c['sensitive_topics']) or 'none'}"
        + f" · domains: {', '.join(c['domains']) or 'none'}"
        + " · languages: " + (", ".join(f"{k} {v:.0%}" for k, v in c["languages"].items()) or "none"),
        markup=True,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add `scan` to the `nuri` command line."""

    @app.command("scan")
    def scan(
        text: Annotated[str | None, typer.Argument(help="text to scan (or use --file / stdin)")] = None,
        file: Annotated[Path | None, typer.Option("--file", "-f", help="read the text from this file")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
        person_threshold: Annotated[float | None, typer.Option(
            "--person-threshold", min=0.0, max=1.0,
            help="privacy.person_threshold for this scan (below 1.0 the name tagger runs; detail says "
                 "rule, tagger or rule+tagger and the tagger's score)")] = None,
    ) -> None:
        """Find personal data, markings and topics in a text."""
        scan_command(text, file, json_out, person_threshold)
