"""The embedded sovereign model: a GGUF run in-process by llama.cpp (llama-cpp-python).

One model is loaded per deployment and shared by every request. llama.cpp's context is not
safe for concurrent use, so generations take turns, each on a worker thread so the event loop
keeps serving other requests. Turns are given by a fair queue (`queueing.FairQueue`:
round-robin between keys, bounded; options `queue_limit`, `queue_per_key`), so one client's burst
does not starve the others. Tokens are handed to the loop as they are produced. A request whose
client has gone stops at the next token: a stream when it is closed, a whole reply (any `n`) when
the client is found gone, which is checked while it waits and while it generates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from nuri.errors import InvalidRequest, UpstreamError
from nuri.providers.base import Body, Provider
from nuri.queueing import POLL_SECONDS, FairQueue, client_gone, current_client

# Request fields llama-cpp-python understands; anything else a client sends is dropped here
# rather than failing the call (it stays in the audit trail's view of the request).
_CHAT_ARGS = {
    "temperature", "top_p", "top_k", "min_p", "stop", "seed", "max_tokens", "presence_penalty",
    "frequency_penalty", "repeat_penalty", "logit_bias", "response_format", "tools", "tool_choice",
    "logprobs", "top_logprobs",
}
_COMPLETION_ARGS = _CHAT_ARGS - {"response_format", "tools", "tool_choice", "top_logprobs"} | {"suffix", "echo"}
_END = object()


class _Cancelled(Exception):
    """Raised inside llama.cpp's generation loop when the request's client has gone."""


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def fold_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as a two-role template (user/assistant) can take them.

    Gemma's template has no system or tool turns and llama-cpp-python drops them silently; as in
    Gemma's own template, instructions are prepended to the first user turn, and tool results
    become user turns, so nothing the client sent is lost.
    """
    preamble: list[str] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        role, text = msg.get("role"), _text_of(msg.get("content"))
        if role in ("system", "developer"):
            preamble.append(text)
            continue
        if role in ("tool", "function"):
            role, text = "user", f"Tool result ({msg.get('name') or msg.get('tool_call_id') or 'tool'}):\n{text}"
        if role == "assistant" and msg.get("tool_calls"):
            calls = [f"{(c.get('function') or {}).get('name')}({(c.get('function') or {}).get('arguments')})"
                     for c in msg["tool_calls"] if isinstance(c, dict)]
            text = (text + "\n" if text else "") + "Tool calls: " + "; ".join(calls)
        if role == "user" and preamble and not any(m["role"] == "user" for m in out):
            text = "\n\n".join([*preamble, text])
            preamble = []
        out.append({"role": role, "content": text})
    if preamble:
        out.insert(0, {"role": "user", "content": "\n\n".join(preamble)})
    return out


def _resolve_model_path(deployment: Any) -> Path:
    if deployment.model_path:
        path = Path(deployment.model_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model_path {path} of deployment {deployment.id} does not exist")
        return path
    from nuri.models import embedded_model_path

    return embedded_model_path()


class LlamaCppProvider(Provider):
    def __init__(self, deployment: Any) -> None:
        from nuri.models import require_embedded

        require_embedded(deployment.id, weights=not deployment.model_path)   # a clear error, before any import
        super().__init__(deployment)
        self._llama: Any = None
        self._embedder: Any = None
        self._lock = threading.Lock()
        self._cancel: threading.Event | None = None   # the running generation's stop flag
        self._queue = FairQueue(int(deployment.options.get("queue_limit", 32)),
                                int(deployment.options.get("queue_per_key", 8)))
        self._embed_lock = threading.Lock()
        self._load_lock = asyncio.Lock()
        self._chat_format = str(deployment.options.get("chat_format", "gemma"))
        self._threads = int(deployment.options.get("n_threads", os.cpu_count() or 2))

    # -- lifecycle --------------------------------------------------------------------------
    def _load(self, embedding: bool = False) -> Any:
        import llama_cpp
        from llama_cpp import Llama

        extra: dict[str, Any] = {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN} if embedding else {}
        return Llama(
            **extra,
            model_path=str(_resolve_model_path(self.deployment)),
            n_ctx=int(self.deployment.options.get("n_ctx", min(self.deployment.context_window, 8192))),
            n_threads=self._threads,
            n_batch=int(self.deployment.options.get("n_batch", 512)),
            # Gemma 3 attends over a 512-token window in five of six layers: a window-sized cache
            # for those (not a full-context one) holds 110 MB less for the 270M model, same output.
            swa_full=bool(self.deployment.options.get("swa_full", False)),
            chat_format=self._chat_format,
            embedding=embedding,
            verbose=False,
        )

    async def start(self) -> None:
        async with self._load_lock:
            if self._llama is None:
                llama = await asyncio.to_thread(self._load)
                self._check_cancel_per_token(llama)
                self._llama = llama

    async def ready(self) -> bool:
        return self._llama is not None

    async def close(self) -> None:
        for model in (self._llama, self._embedder):
            if model is not None:
                with contextlib.suppress(Exception):
                    model.close()
        self._llama = self._embedder = None

    # -- helpers ----------------------------------------------------------------------------
    def _fresh_if_seeded(self, body: Body) -> None:
        """With a seed, evaluate the prompt from scratch: reusing the cached prefix changes the
        logits in the last bits, and so the sampled tokens, which would break reproducibility."""
        if body.get("seed") is not None:
            self._llama.reset()

    @staticmethod
    def _args(body: Body, allowed: set[str]) -> dict[str, Any]:
        args = {k: v for k, v in body.items() if k in allowed and v is not None}
        if body.get("max_completion_tokens") is not None:
            args["max_tokens"] = body["max_completion_tokens"]
        args.setdefault("max_tokens", 256)
        return args

    def _count(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0

    def _chat_prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        from llama_cpp import llama_chat_format

        formatter: Callable[..., Any] | None = getattr(llama_chat_format, f"format_{self._chat_format}", None)
        if formatter is not None:
            with contextlib.suppress(Exception):
                return self._count(formatter(messages=messages).prompt)
        return self._count("\n".join(str(m.get("content") or "") for m in messages))

    def _check_cancel_per_token(self, llama: Any) -> None:
        """Stop a generation whose client has gone: llama.cpp evaluates through `eval` once per
        token (and once for the prompt), so a check there stops any call, streamed or not, within
        one token, with the context left as consistent as after any evaluation."""
        evaluate = llama.eval

        def eval_unless_cancelled(tokens: Any) -> None:
            cancel = self._cancel
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            evaluate(tokens)

        llama.eval = eval_unless_cancelled

    def _guarded(self, fn: Callable[[], Any], cancel: threading.Event) -> Any:
        with self._lock:
            self._cancel = cancel
            try:
                return fn()
            finally:
                self._cancel = None

    async def _run_locked(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on a worker thread in this client's turn; while it runs, check every
        POLL_SECONDS that the client is still there, and stop the generation if not."""
        await self.start()
        client = current_client()
        async with self._queue.turn(client.key, client.gone):
            cancel = threading.Event()
            work = asyncio.get_running_loop().run_in_executor(None, self._guarded, fn, cancel)
            try:
                while not work.done():
                    await asyncio.wait({work}, timeout=POLL_SECONDS if client.gone is not None else None)
                    if not work.done() and client.gone is not None and await client.gone():
                        raise client_gone()
                return work.result()
            except (ValueError, RuntimeError) as exc:
                raise UpstreamError(f"embedded model {self.deployment.id} failed: {exc}", status=500) from exc
            except BaseException:
                cancel.set()                  # the turn ends when the thread has stopped
                with contextlib.suppress(BaseException):
                    await asyncio.shield(work)
                raise

    async def _stream_locked(self, make_iter: Callable[[], Iterator[Body]]) -> AsyncGenerator[Body, None]:
        """Run a llama.cpp token iterator on a worker thread in this client's turn, relaying items
        as they come; closing this iterator stops the generation at the next token."""
        await self.start()
        client = current_client()
        async with self._queue.turn(client.key, client.gone):
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            cancelled = threading.Event()

            def produce() -> None:
                try:
                    iterator = make_iter()
                    try:
                        for item in iterator:
                            if cancelled.is_set():
                                break
                            loop.call_soon_threadsafe(queue.put_nowait, item)
                    finally:
                        close = getattr(iterator, "close", None)
                        if close is not None:
                            close()
                except _Cancelled:
                    pass
                except BaseException as exc:  # relayed to the consumer
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _END)

            worker = loop.run_in_executor(None, self._guarded, produce, cancelled)
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise UpstreamError(f"embedded model {self.deployment.id} failed: {item}", status=500)
                    yield item
            finally:
                cancelled.set()
                with contextlib.suppress(BaseException):
                    await asyncio.shield(worker)

    # -- chat -------------------------------------------------------------------------------
    def _messages(self, body: Body) -> list[dict[str, Any]]:
        messages = body.get("messages") or []
        return fold_messages(messages) if self._chat_format == "gemma" else messages

    async def chat(self, body: Body) -> Body:
        messages = self._messages(body)
        args = self._args(body, _CHAT_ARGS)
        n = int(body.get("n") or 1)

        def run() -> Body:
            first: Body | None = None
            for i in range(n):
                self._fresh_if_seeded(body)
                out = self._llama.create_chat_completion(messages=messages, stream=False, **args)
                if first is None:
                    first = out
                else:
                    choice = dict(out["choices"][0], index=i)
                    first["choices"].append(choice)
                    first["usage"]["completion_tokens"] += out["usage"]["completion_tokens"]
                    first["usage"]["total_tokens"] += out["usage"]["completion_tokens"]
            assert first is not None
            return first

        result = await self._run_locked(run)
        result["model"] = self.deployment.id
        return result

    async def stream_chat(self, body: Body) -> AsyncIterator[Body]:
        if int(body.get("n") or 1) != 1:
            raise InvalidRequest("the embedded model streams one choice at a time (n must be 1)", param="n")
        messages = self._messages(body)
        args = self._args(body, _CHAT_ARGS)
        completion_tokens = prompt_tokens = 0

        def start() -> Iterator[Body]:
            nonlocal prompt_tokens
            self._fresh_if_seeded(body)
            prompt_tokens = self._chat_prompt_tokens(messages)     # in this turn, not another
            return self._llama.create_chat_completion(messages=messages, stream=True, **args)

        async with contextlib.aclosing(self._stream_locked(start)) as chunks:
            async for chunk in chunks:
                chunk["model"] = self.deployment.id
                for choice in chunk.get("choices", []):
                    if (choice.get("delta") or {}).get("content"):
                        completion_tokens += 1
                yield chunk
        yield {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": self.deployment.id, "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    # -- legacy completions -----------------------------------------------------------------
    async def complete(self, body: Body) -> Body:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise InvalidRequest("the embedded model takes one text prompt", param="prompt")
            prompt = prompt[0]
        args = self._args(body, _COMPLETION_ARGS)
        def run() -> Body:
            self._fresh_if_seeded(body)
            return self._llama.create_completion(prompt=prompt, stream=False, **args)

        result = await self._run_locked(run)
        result["model"] = self.deployment.id
        return result

    async def stream_complete(self, body: Body) -> AsyncIterator[Body]:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
        args = self._args(body, _COMPLETION_ARGS)
        completion_tokens = prompt_tokens = 0

        def start() -> Iterator[Body]:
            nonlocal prompt_tokens
            self._fresh_if_seeded(body)
            prompt_tokens = self._count(prompt) + 1
            return self._llama.create_completion(prompt=prompt, stream=True, **args)

        async with contextlib.aclosing(self._stream_locked(start)) as chunks:
            async for chunk in chunks:
                chunk["model"] = self.deployment.id
                completion_tokens += sum(1 for c in chunk.get("choices", []) if c.get("text"))
                yield chunk
        yield {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
            "model": self.deployment.id, "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    # -- embeddings -------------------------------------------------------------------------
    async def embed(self, body: Body) -> Body:
        inputs = body.get("input")
        if self._embedder is None:
            async with self._load_lock:
                if self._embedder is None:
                    self._embedder = await asyncio.to_thread(self._load, True)

        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])

        def run() -> tuple[list[list[float]], int]:
            with self._embed_lock:
                vectors = self._embedder.embed(texts, normalize=True)  # mean-pooled, unit length
                tokens = sum(len(self._embedder.tokenize(t.encode("utf-8"))) for t in texts)
                return vectors, tokens

        vectors, tokens = await asyncio.to_thread(run)
        return {
            "object": "list", "model": self.deployment.id,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
