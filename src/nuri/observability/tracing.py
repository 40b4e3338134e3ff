"""OpenTelemetry spans for classify, decide, route and the upstream call.

Off unless configured: with neither NURI_TRACING (console | otlp) nor OTEL_EXPORTER_OTLP_ENDPOINT
set, `span()` returns one shared no-op context manager, so tracing costs a function call.
Attributes must be types, counts, ids and names — never request content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from nuri.config import env

_tracer: Any = None
_configured = False
_NOOP = contextlib.nullcontext()


def configure(mode: str | None = None, service_name: str = "nuri") -> bool:
    """Set up the tracer once from the environment (or `mode`); True when spans are exported."""
    global _tracer, _configured
    _configured = True
    mode = (mode or env("NURI_TRACING") or ("otlp" if env("OTEL_EXPORTER_OTLP_ENDPOINT") else "")).lower()
    if mode not in ("console", "otlp"):
        _tracer = None
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:   # console is for debugging: write each span as it ends
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("nuri")
    return True


def enabled() -> bool:
    if not _configured:
        configure()
    return _tracer is not None


@contextlib.contextmanager
def _real_span(name: str, attrs: Mapping[str, Any]) -> Iterator[Any]:
    with _tracer.start_as_current_span(name) as sp:
        for key, value in attrs.items():
            if value is not None:
                sp.set_attribute(key, value if isinstance(value, str | bool | int | float) else str(value))
        yield sp


def span(name: str, attributes: Mapping[str, Any] | None = None, **attrs: Any) -> contextlib.AbstractContextManager[Any]:
    """`with span("nuri.classify", request_id=rid): …` — dotted names go in `attributes`."""
    if not _configured:
        configure()
    if _tracer is None:
        return _NOOP
    merged = dict(attributes or {})
    merged.update(attrs)
    return _real_span(name, merged)


def shutdown() -> None:
    """Flush spans still batched for OTLP; the gateway calls it when it stops."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()
