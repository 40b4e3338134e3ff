"""`nuri rag …`: ingest documents into a collection, query it, evaluate retrieval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

rag_app = typer.Typer(help="In-country retrieval over your documents, grade-aware.", no_args_is_help=True)
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml (its rag: section)",
                                                 envvar="NURI_CONFIG")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory (default .nuri/)",
                                                  envvar="NURI_DATA_DIR")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def register(app: typer.Typer) -> None:
    app.add_typer(rag_app, name="rag")


def _service(config: Path | None, data_dir: Path | None) -> Any:
    from nuri.config import ConfigError, load_config
    from nuri.config import data_dir as resolve
    from nuri.rag.service import RagService

    try:
        cfg = load_config(config)
        return cfg, RagService.open(cfg, resolve(data_dir))
    except (ConfigError, ValueError, OSError) as exc:
        console.print(f"nuri: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


@rag_app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (txt, md, html, pdf, docx, hwpx, hwp)")],
    collection: Annotated[str, typer.Option("--collection", help="a collection of the config's rag: section")],
    grade: Annotated[str | None, typer.Option(help="N2SF grade O, S or C for these files (default: the collection's)")] = None,
    force: Annotated[bool, typer.Option(help="re-ingest files whose content did not change")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read, chunk, classify and store documents; a file that fails is reported and the rest go on."""
    from nuri.privacy.scanner import Scanner
    from nuri.rag.ingest import Ingestor

    if grade is not None and grade.upper() not in ("O", "S", "C"):
        console.print("nuri: --grade must be O, S or C")
        raise typer.Exit(2)
    cfg, service = _service(config, data_dir)
    settings = service.settings.collections.get(collection)
    if settings is None:
        console.print(f"nuri: no collection {collection!r} in rag.collections; add it (with its readers) first",
                      markup=False, highlight=False)
        raise typer.Exit(2)
    ingestor = Ingestor(service.store, Scanner(cfg.privacy), service.tokenizer,
                        chunk_chars=service.settings.chunk_chars, embedder=service.embedder)
    report = asyncio.run(ingestor.ingest(paths, collection, default_grade=settings.grade,
                                         grade=grade.upper() if grade else None, force=force))
    summary = report.summary()
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        for f in report.files:
            line = f"{f.status:9} {f.path}"
            line += f"  ({f.chunks} chunks, {f.pages} pages, grade {f.grade})" if f.status == "ingested" else ""
            line += f"  {f.reason}" if f.reason else ""
            print(line)
        print(f"{summary['ingested']} ingested, {summary['unchanged']} unchanged, {summary['failed']} failed: "
              f"{summary['chunks']} chunks in {summary['seconds']}s")
    service.close()
    if report.failed:
        raise typer.Exit(1)


@rag_app.command()
def query(
    question: Annotated[str, typer.Argument(help="what to search for")],
    collection: Annotated[str, typer.Option("--collection", help="the collection to search")],
    top_k: Annotated[int | None, typer.Option("--top-k", help="passages (default: the collection's top_k)")] = None,
    mode: Annotated[str | None, typer.Option(help="lexical | dense | hybrid (default: the collection's)")] = None,
    team: Annotated[str | None, typer.Option(help="search as this team (the collection's ACL applies)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search a collection from the command line, with citations."""
    from nuri.errors import NuriError
    from nuri.principal import Principal

    _cfg, service = _service(config, data_dir)
    try:
        if team is None:       # the operator, who holds the store anyway
            hits = asyncio.run(service.search(collection, question, top_k, mode))
        else:
            hits = asyncio.run(service.retrieve(Principal(team=team), collection, question, top_k, mode))
    except NuriError as exc:
        console.print(f"nuri: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    finally:
        service.close()
    if as_json:
        print(json.dumps([{**h.citation(), "text": h.chunk.text} for h in hits], ensure_ascii=False, indent=2))
        return
    for h in hits:
        c = h.citation()
        where = " · ".join(str(x) for x in (c["title"], f"p.{c['page']}" if c["page"] else None, c["heading"]) if x)
        print(f"[{h.n}] {c['id']}  {where}  grade {c['grade']}  score {c['score']}")
        print("    " + h.chunk.text[:200].replace("\n", " "))


@rag_app.command("eval")
def evaluate(
    embed_model: Annotated[str | None, typer.Option(help="embedding model through a Nuri gateway (dense, hybrid)")] = None,
    embed_url: Annotated[str, typer.Option(help="that gateway's base URL", envvar="NURI_URL")] = "http://127.0.0.1:8000/v1",
    api_key: Annotated[str | None, typer.Option(help="a Nuri key for the embeddings", envvar="NURI_API_KEY")] = None,
    export_suite: Annotated[Path | None, typer.Option(help="write a grounded suite of Kiwi-BM25's top 3 here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """recall@k and MRR of Kiwi-BM25, whitespace BM25, dense and hybrid on the shipped Korean set."""
    from pydantic import SecretStr

    from nuri.rag.embedder import GatewayEmbedder
    from nuri.rag.evaluate import compare, export_grounded, load_set, rankings_for
    from nuri.rag.settings import EmbeddingSettings

    data = load_set()
    embedder = None
    if embed_model:
        embedder = GatewayEmbedder(EmbeddingSettings(url=embed_url, model=embed_model,
                                                     api_key=SecretStr(api_key) if api_key else None))
    result = asyncio.run(compare(data, embedder))
    if export_suite is not None:
        export_grounded(data, rankings_for(data, "kiwi-bm25"), export_suite)
        result["exported"] = str(export_suite)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    print(f"{result['suite']}: {result['items']} questions over {result['chunks']} chunks")
    for name, m in result["methods"].items():
        print(f"  {name:16} " + "  ".join(f"{k} {v}" for k, v in m.items()))
    for name, why in result["skipped"].items():
        print(f"  {name:16} skipped: {why}")
