"""How an adapter reaches its endpoint: credentials, extra headers, egress proxy and TLS.

One place turns a deployment's `upstream:` block into what `http1.ConnectionPool` takes, so the
OpenAI-compatible and Anthropic adapters treat auth schemes, proxies, CA bundles and client
certificates alike.

Proxy choice: `upstream.proxy` when set (`direct` means none); otherwise `HTTPS_PROXY` for an
`https://` endpoint and `HTTP_PROXY` for an `http://` one (lower-case names first, as curl reads
them), skipped for hosts `NO_PROXY` lists and for loopback addresses, which a proxy cannot reach
on the gateway's behalf anyway.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from nuri.catalog import Deployment
from nuri.config import env
from nuri.providers.http1 import ConnectionPool, Timeouts


def credential_headers(deployment: Deployment, native: tuple[str, str] = ("Authorization", "Bearer ")) -> dict[str, str]:
    """The configured extra headers plus the API key in the header the auth scheme names.

    `native` is the adapter's own scheme (header, value prefix), used when `upstream.auth` is unset."""
    upstream = deployment.upstream
    headers = {name: value.get_secret_value() for name, value in upstream.headers.items()}
    if deployment.api_key is None or upstream.auth == "none":
        return headers
    key = deployment.api_key.get_secret_value()
    if upstream.auth == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif upstream.auth == "api-key":
        headers[upstream.auth_header] = key
    else:
        name, prefix = native
        headers[name] = f"{prefix}{key}"
    return headers


def tls_context(deployment: Deployment) -> ssl.SSLContext | None:
    """The TLS context for the endpoint: its CA bundle and client certificate, if configured.

    None means the system's CAs. A file that cannot be read stops start-up with its path."""
    upstream = deployment.upstream
    if upstream.ca_bundle is None and upstream.client_cert is None:
        return None
    where = f"upstream.ca_bundle {upstream.ca_bundle}"
    try:
        context = ssl.create_default_context(cafile=upstream.ca_bundle)
        if upstream.client_cert is not None:
            where = f"upstream.client_cert {upstream.client_cert}" + (
                f" / client_key {upstream.client_key}" if upstream.client_key else "")
            context.load_cert_chain(upstream.client_cert, upstream.client_key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"deployment {deployment.id}: cannot load {where}: {reason}") from exc
    return context


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether NO_PROXY exempts host:port, as curl reads it: `*`, domains (`example.kr` and
    `.example.kr` both cover subdomains), optional `:port`, IP addresses and CIDR ranges."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        name, entry_port = entry, None
        if entry.count(":") == 1 or entry.startswith("["):          # host:port, [v6]:port
            head, _, tail = entry.rpartition(":")
            if tail.isdigit() and head:
                name, entry_port = head, int(tail)
        name = name.strip("[]")
        if entry_port is not None and entry_port != port:
            continue
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
            continue
        except ValueError:
            pass
        name = name.lstrip("*").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def proxy_for(deployment: Deployment, base_url: str) -> str | None:
    """The proxy URL to reach `base_url` through, or None to connect directly."""
    configured = deployment.upstream.proxy.get_secret_value() if deployment.upstream.proxy else None
    if configured == "direct":
        return None
    if configured:
        return configured
    url = urlsplit(base_url)
    host = url.hostname
    if not host or url.scheme not in ("http", "https") or _loopback(host):
        return None
    chosen = env(f"{url.scheme}_proxy") or env(f"{url.scheme.upper()}_PROXY")
    if not chosen:
        return None
    if bypassed(host, url.port or (443 if url.scheme == "https" else 80), env("no_proxy") or env("NO_PROXY") or ""):
        return None
    return chosen if "://" in chosen else f"http://{chosen}"


@dataclass(frozen=True, slots=True)
class Route:
    """Everything a connection pool to one endpoint needs, worked out once when the adapter is made
    (so a missing CA file stops start-up instead of failing each request)."""

    base_url: str
    max_connections: int
    timeouts: Timeouts
    tls: ssl.SSLContext | None
    proxy: str | None

    def pool(self, headers: dict[str, str]) -> ConnectionPool:
        return ConnectionPool(self.base_url, max_connections=self.max_connections, timeouts=self.timeouts,
                              headers=headers, tls=self.tls, proxy=self.proxy)


def route(deployment: Deployment, base_url: str) -> Route:
    """The deployment's limits, timeouts, proxy and TLS settings for `base_url`."""
    t = deployment.timeouts
    return Route(base_url, deployment.max_concurrency, Timeouts(connect=t.connect, read=t.read, total=t.total),
                 tls_context(deployment) if base_url.startswith("https://") else None,
                 proxy_for(deployment, base_url))


def describe(exc: BaseException) -> str:
    """A transport failure in words an operator can act on, with no request content in it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"TLS verification failed ({seen.verify_message}); check upstream.ca_bundle"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({seen.reason or type(seen).__name__})"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__
