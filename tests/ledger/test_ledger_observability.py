"""Metrics, traces and JSON logs — and no raw personal data in anything the ledger emits:
the database files, the export, the logs, the metrics and the spans are grepped for known values."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from nuri.config import LedgerSettings
from nuri.ledger import AuditRecord, Ledger
from nuri.ledger.audit.export import export
from nuri.observability import metrics, tracing
from nuri.observability.logging import JsonFormatter, configure_logging, request_context

RRN = "900101-1234567"
PHONE = "010-9876-5432"
NAME = "홍길동"
EMAIL = "gildong.hong@example.kr"
KNOWN = [RRN, PHONE, NAME, EMAIL, RRN.replace("-", ""), PHONE.replace("-", "")]


def pii_record(led: Ledger, i: int) -> AuditRecord:
    return AuditRecord(
        request_id=f"req_pii_{i}", endpoint="chat", team="privacy", key_id="abc", model_requested="default",
        classification={"KR_RRN": 1, "PHONE": 1, "PERSON": 1, "EMAIL": 1},
        entity_hashes={"KR_RRN": [led.keyed_hash(RRN)], "PHONE": [led.keyed_hash(PHONE)],
                       "PERSON": [NAME],            # a raw value by mistake: must be hashed, not stored
                       "EMAIL": [EMAIL]},
        categories=["unique_identification", "personal"], action="pseudonymize", rule_ids=["kr-pipa.rrn"],
        deployment="local-gemma", jurisdiction="KR", prompt_tokens=42, completion_tokens=7, cost=0.0001,
        latency_ms=33.0, ttft_ms=5.0, stream=True,
    )


async def test_nothing_personal_anywhere(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream)
    log = logging.getLogger("nuri.test")
    try:
        led = await Ledger.open(LedgerSettings(durability="process"), tmp_path)
        new = await led.create_key("privacy", budget=10)
        p = await led.authenticate(f"Bearer {new.key}")
        for i in range(5):
            with request_context(f"req_pii_{i}"):
                adm = await led.admit(p, 50)
                rec = pii_record(led, i)
                await led.finish(adm, rec)
                log.info("done", extra={"prompt": f"my number is {RRN}", "content": NAME, "team": "privacy",
                                        "nested": {"text": PHONE, "count": 2}})
        assert await led.drain()      # durability process: the records reach the chain from the spool
        exported = io.StringIO()
        await led.db.run_raw(lambda c: export(c, exported, "jsonl"))
        exported_csv = io.StringIO()
        await led.db.run_raw(lambda c: export(c, exported_csv, "csv"))
        stored = json.loads(exported.getvalue().splitlines()[-1])
        await led.close()
    finally:
        logging.getLogger().removeHandler(handler)

    assert stored["entity_hashes"]["PERSON"] == [led.keyed_hash(NAME)]
    assert stored["entity_hashes"]["KR_RRN"] == [led.keyed_hash(RRN)]
    assert stored["classification"] == {"KR_RRN": 1, "PHONE": 1, "PERSON": 1, "EMAIL": 1}

    logs = stream.getvalue()
    lines = [json.loads(line) for line in logs.splitlines()]
    done = [line for line in lines if line["msg"] == "done"]
    assert len(done) == 5 and done[0]["request_id"] == "req_pii_0" and done[0]["prompt"] == "[redacted]"

    blobs = {
        "logs": logs,
        "export.jsonl": exported.getvalue(),
        "export.csv": exported_csv.getvalue(),
        "metrics": metrics.render()[0].decode(),
    }
    for f in tmp_path.iterdir():
        if f.is_file():
            blobs[f.name] = f.read_bytes().decode("utf-8", "replace")
    assert "nuri.db" in blobs
    for where, blob in blobs.items():
        for value in KNOWN:
            assert value not in blob, f"{value!r} found in {where}"


async def test_metrics_have_genai_names() -> None:
    rec = AuditRecord(request_id="m1", endpoint="chat", team="mt", model_requested="default", action="allow",
                      rule_ids=["r1", "r2"], deployment="dep-a", jurisdiction="KR", prompt_tokens=11,
                      completion_tokens=3, cost=0.25, latency_ms=120.0, ttft_ms=20.0)
    metrics.observe(rec)
    metrics.set_circuit_state("dep-a", "open")
    metrics.set_budget_remaining("mt", 4.5)
    metrics.observe_overhead(0.0004)
    body, ctype = metrics.render_latest()
    text = body.decode()
    assert ctype.startswith("text/plain")
    for name in ("gen_ai_client_token_usage_bucket", "gen_ai_client_operation_duration_seconds_bucket",
                 "gen_ai_server_time_to_first_token_seconds_bucket", "nuri_requests_total", "nuri_cost_total",
                 "nuri_tokens_total", "nuri_policy_decisions_total", "nuri_traffic_by_jurisdiction_total",
                 "nuri_circuit_state", "nuri_budget_remaining", "nuri_gateway_overhead_seconds_bucket"):
        assert name in text, name
    assert 'gen_ai_token_type="input"' in text
    assert 'nuri_policy_decisions_total{action="allow",rule="r2"}' in text
    assert 'nuri_circuit_state{deployment="dep-a"} 2.0' in text
    assert 'nuri_budget_remaining{team="mt"} 4.5' in text


def test_span_is_a_noop_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURI_TRACING", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setattr(tracing, "_configured", False)
    monkeypatch.setattr(tracing, "_tracer", None)
    with tracing.span("nuri.classify", request_id="x") as sp:
        assert sp is None
    assert tracing.enabled() is False


def test_span_records_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_configured", True)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    with tracing.span("nuri.upstream", {"gen_ai.request.model": "default"}, request_id="r9", entities=3), \
            tracing.span("nuri.decide", action="allow"):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["nuri.upstream"].attributes["gen_ai.request.model"] == "default"
    assert spans["nuri.upstream"].attributes["entities"] == 3
    assert spans["nuri.decide"].parent.span_id == spans["nuri.upstream"].context.span_id


def test_json_formatter_shape() -> None:
    record = logging.LogRecord("nuri.x", logging.WARNING, __file__, 1, "hello %s", ("there",), None)
    record.api_key = "nuri-abc"
    record.deployment = "d1"
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == "hello there" and out["level"] == "warning" and out["deployment"] == "d1"
    assert out["api_key"] == "[redacted]"
