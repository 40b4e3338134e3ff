"""Ingest: every format reads, chunks keep their structure, grades and counts are stored, a bad
file is reported while the rest go in, re-ingest replaces, and the store works on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from make_docs import MAKERS, make_md

from nuri.config import PrivacySettings
from nuri.principal import Principal
from nuri.privacy.scanner import Scanner
from nuri.rag.ingest import Ingestor
from nuri.rag.service import RagService
from nuri.rag.settings import CollectionSettings, RagSettings
from nuri.rag.store import ChunkStore
from nuri.rag.tokens import KiwiTokenizer

TOKENIZER = KiwiTokenizer()


def _service(url: str, schema: str | None = None) -> RagService:
    settings = RagSettings(collections={"docs": CollectionSettings(), "secret": CollectionSettings(grade="S")})
    return RagService(settings, ChunkStore(url, schema), tokenizer=TOKENIZER)


def _ingest(service: RagService, paths: list[Path], collection: str = "docs", **kwargs):
    ingestor = Ingestor(service.store, Scanner(PrivacySettings()), TOKENIZER, chunk_chars=700)
    default = service.settings.collections[collection].grade
    return asyncio.run(ingestor.ingest(paths, collection, default_grade=default, **kwargs))


def _search(service: RagService, query: str, collection: str = "docs"):
    return asyncio.run(service.retrieve(Principal(team="any"), collection, query, 3))


@pytest.mark.parametrize("fmt", sorted(MAKERS))
def test_every_format_ingests_with_its_structure(tmp_path: Path, fmt: str) -> None:
    path = MAKERS[fmt](tmp_path / f"rules.{fmt}")
    service = _service(f"sqlite:///{tmp_path / 'rag.db'}")
    report = _ingest(service, [path])
    assert [f.status for f in report.files] == ["ingested"], report.files[0].reason
    hits = _search(service, "비밀번호를 얼마마다 바꿔야 하나요?")
    assert hits and "90일마다" in hits[0].chunk.text
    chunk = hits[0].chunk
    assert chunk.text[chunk.text.index("90일"):].startswith("90일")
    if fmt == "pdf":
        assert chunk.page == 2 and report.files[0].pages == 2
    elif fmt in ("md", "html", "docx", "hwpx"):
        assert chunk.heading.endswith("보안 지침"), chunk.heading
        assert chunk.title == "사내 규정"


def test_a_bad_file_is_reported_and_the_rest_ingest(tmp_path: Path) -> None:
    good = make_md(tmp_path / "good.md")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 this is not a pdf")
    odd = tmp_path / "notes.xyz"
    odd.write_text("?")
    service = _service(f"sqlite:///{tmp_path / 'rag.db'}")
    report = _ingest(service, [broken, good, odd])
    status = {Path(f.path).name: (f.status, f.reason) for f in report.files}
    assert status["good.md"][0] == "ingested"
    assert status["broken.pdf"][0] == "failed" and status["broken.pdf"][1]
    assert status["notes.xyz"][0] == "failed" and "unsupported" in status["notes.xyz"][1]
    assert _search(service, "출장 일비")


def test_reingest_skips_unchanged_and_replaces_changed(tmp_path: Path) -> None:
    path = make_md(tmp_path / "rules.md")
    service = _service(f"sqlite:///{tmp_path / 'rag.db'}")
    assert _ingest(service, [path]).files[0].status == "ingested"
    assert _ingest(service, [path]).files[0].status == "unchanged"
    path.write_text("# 새 규정\n\n## 주차\n\n방문객 주차는 2시간까지 무료이다.\n", encoding="utf-8")
    assert _ingest(service, [path]).files[0].status == "ingested"
    chunks = service.store.chunks("docs")
    assert all("비밀번호" not in c.text for c in chunks)          # the old chunks are gone
    assert _search(service, "방문객 주차는 무료인가요?")[0].chunk.text.endswith("무료이다.")
    assert not _search(service, "비밀번호 변경 주기")               # the running index saw the change


def test_grades_markings_and_entity_counts_are_stored_never_values(tmp_path: Path) -> None:
    doc = tmp_path / "memo.md"
    doc.write_text("# 메모\n\n## 공개\n\n회의는 매주 월요일이다.\n\n## 대외비\n\n[대외비] 인수 협상은 3월에 끝낸다.\n\n"
                   "## 연락처\n\n담당자 휴대전화는 010-2345-6789 이다.\n", encoding="utf-8")
    service = _service(f"sqlite:///{tmp_path / 'rag.db'}")
    _ingest(service, [doc])
    by_heading = {c.heading.split(" > ")[-1]: c for c in service.store.chunks("docs")}
    assert by_heading["공개"].grade == "O"
    assert by_heading["대외비"].grade == "S" and "대외비" in by_heading["대외비"].markings
    contact = by_heading["연락처"]
    assert contact.entities.get("PHONE") == 1 or contact.entities.get("KR_PHONE") == 1, contact.entities
    assert "personal" in contact.categories
    assert all("6789" not in str(v) for v in (contact.entities, contact.categories, contact.markings))
    # a collection's default grade, or --grade, lifts every chunk of it
    _ingest(service, [doc], collection="secret")
    assert {c.grade for c in service.store.chunks("secret")} == {"S"}
    _ingest(service, [doc], collection="docs", grade="C", force=True)
    assert {c.grade for c in service.store.chunks("docs")} == {"C"}


def test_the_store_file_is_owner_only(tmp_path: Path) -> None:
    _service(f"sqlite:///{tmp_path / 'rag.db'}")
    assert (tmp_path / "rag.db").stat().st_mode & 0o777 == 0o600


def test_postgresql_store_and_index_rebuilt_from_it(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    dsn = os.environ.get("NURI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable at {dsn}: {type(exc).__name__}")
    schema = "rag_test_" + uuid.uuid4().hex[:8]
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        first = _service(url, schema)
        _ingest(first, [make_md(tmp_path / "rules.md")])
        first.close()
        fresh = _service(url, schema)          # a new process: the index comes from the store
        assert "2만 원" in _search(fresh, "국내 출장 일비는 얼마인가요?")[0].chunk.text
        fresh.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

