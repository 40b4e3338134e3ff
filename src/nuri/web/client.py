"""The console's only way to data: the admin API, called in-process through the ASGI app.

Each call carries the session's credential as a bearer token, so the API's own guard, audit
records and errors apply exactly as for any other client; nothing here reads the database.
"""

from __future__ import annotations

from typing import Any

import httpx

API = "/v1/nuri"


class ApiError(Exception):
    """An error answer of the admin API, in its own format."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class AdminClient:
    def __init__(self, app: Any, credential: str, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        transport = httpx.ASGITransport(app=app, client=client)
        self._http = httpx.AsyncClient(transport=transport, base_url="http://console.internal",
                                       headers={"authorization": f"Bearer {credential}"}, timeout=60)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   body: Any = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        response = await self._http.request(method, API + path, params=clean, json=body)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, str(error.get("message")), error.get("code"))
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, response.text[:200]) from None
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return await self.call("POST", path, params=params, body=body if body is not None else {})

    async def put(self, path: str, body: Any) -> Any:
        return await self.call("PUT", path, body=body)
