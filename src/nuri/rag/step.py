"""The RAG step of the request pipeline, run right after the body is read and before it is parsed.

A chat request naming `model: rag:<collection>`, or carrying `nuri_rag` (a collection name, or
`{"collection": …, "top_k": …}`), gets the passages its last user message retrieves injected as
a system message, each headed by its number, chunk id, title and page, and by its N2SF marking
([S], [C]) when its stored grade is above open. The request then goes on as any other: the one
walk classifies passages and question together, so the most sensitive passage decides where it
may go, and `nuri explain` shows the same. The body's model becomes the collection's answering
model (for `rag:`), which the key must be allowed to use like any model it names.
"""

from __future__ import annotations

from typing import Any

from nuri.errors import InvalidRequest
from nuri.principal import Principal
from nuri.rag.service import Hit, RagService

PREFIX = "rag:"
FIELD = "nuri_rag"
INSTRUCTION = ("다음은 사내 문서에서 찾은 자료입니다. 자료에 근거하여 답하고, 근거가 된 자료의 번호를 [1]처럼 "
               "표시하세요. 자료에 답이 없으면 \"문서에서 찾을 수 없습니다\"라고 답하세요.")
NOTHING_FOUND = "사내 문서에서 이 질문에 관련된 자료를 찾지 못했습니다. \"문서에서 찾을 수 없습니다\"라고 답하세요."


def service_for(gw: Any) -> RagService:
    """The gateway's retrieval service, opened on first use (the index is then built from the store)."""
    service = getattr(gw, "rag", None)
    if service is None:
        service = RagService.open(gw.config, gw.data_dir)
        gw.rag = service
    return service


async def rag_step(gw: Any, principal: Principal, body: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(the body to go on with, its citations); a body that asks for no retrieval passes unchanged."""
    if not isinstance(body, dict):
        return body, []
    model, spec = body.get("model"), body.get(FIELD)
    named = isinstance(model, str) and model.startswith(PREFIX)
    if spec is None and not named:
        return body, []
    collection, top_k = _target(model if named else None, spec)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("retrieval (rag:<collection> or nuri_rag) needs a chat request with messages",
                             param="messages", code="rag_needs_chat")
    question = last_user_text(messages)
    if not question:
        raise InvalidRequest("retrieval needs a user message with text to search for", param="messages",
                             code="rag_no_question")
    service = service_for(gw)
    settings = service.require(principal, collection)
    hits = await service.retrieve(principal, collection, question, top_k)
    kept = within_budget(hits, service.settings.max_context_chars)
    out = {k: v for k, v in body.items() if k != FIELD}
    out["messages"] = [{"role": "system", "content": passages_message(kept)}, *messages]
    if named or not isinstance(model, str):
        out["model"] = settings.model
    return out, [h.citation() for h in kept]


def _target(model: str | None, spec: Any) -> tuple[str, int | None]:
    if spec is None:
        return model[len(PREFIX):] if model else "", None
    if isinstance(spec, str):
        return spec, None
    if isinstance(spec, dict) and isinstance(spec.get("collection"), str) and set(spec) <= {"collection", "top_k"}:
        top_k = spec.get("top_k")
        if top_k is not None and (type(top_k) is not int or not 1 <= top_k <= 50):
            raise InvalidRequest("nuri_rag.top_k must be an integer from 1 to 50", param=FIELD)
        return spec["collection"], top_k
    raise InvalidRequest('nuri_rag must be a collection name or {"collection": name, "top_k": n}', param=FIELD)


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content.strip()
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content
                            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)).strip()
    return ""


def within_budget(hits: list[Hit], max_chars: int) -> list[Hit]:
    """The best passages whose text fits the budget; the best one always."""
    kept: list[Hit] = []
    used = 0
    for hit in hits:
        if kept and used + len(hit.chunk.text) > max_chars:
            break
        kept.append(hit)
        used += len(hit.chunk.text)
    return kept


def passage_header(hit: Hit) -> str:
    c = hit.chunk
    where = [c.title] + ([f"{c.page}쪽"] if c.page else []) + ([c.heading] if c.heading and c.heading != c.title else [])
    marking = f" [{c.grade}]" if c.grade in ("S", "C") else ""
    return f"[{hit.n}] {' · '.join(where)} (chunk {c.id}){marking}"


def passages_message(hits: list[Hit]) -> str:
    if not hits:
        return NOTHING_FOUND
    blocks = [f"{passage_header(h)}\n{h.chunk.text}" for h in hits]
    return INSTRUCTION + "\n\n" + "\n\n".join(blocks)


def public_citations(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the reply shows: everything the citation holds (it has no passage text)."""
    return [dict(c) for c in citations]

