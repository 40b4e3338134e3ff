"""Upstream options: auth schemes, extra headers, egress proxies, CA bundles and mutual TLS.

Everything runs over real sockets: a recording upstream (HTTPS with a CA made here by the openssl
CLI), a small proxy that tunnels CONNECT and resolves a host name only it knows (so a reply proves
the traffic went through it), and real `nuri serve` processes for the end-to-end cases.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nuri.catalog import Deployment
from nuri.config import ConfigError, parse_config
from nuri.errors import UpstreamError
from nuri.providers.egress import bypassed
from nuri.providers.openai_compatible import OpenAICompatibleProvider
from support.upstream_server import RunningProxy, RunningUpstream

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl CLI makes the test CA")

HIDDEN = "upstream.nuri.test"        # resolvable by the test proxies only
CHAT = {"messages": [{"role": "user", "content": "안녕"}], "max_tokens": 8}


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(d: Path, name: str, subject: str, ext: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={subject}", cwd=d)
    (d / f"{name}.ext").write_text(ext + "\nauthorityKeyIdentifier=keyid\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=Nuri test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _issue(d, "server", HIDDEN, f"subjectAltName=DNS:{HIDDEN},DNS:localhost,IP:127.0.0.1\n"
                                "extendedKeyUsage=serverAuth")
    _issue(d, "client", "nuri-gateway", "extendedKeyUsage=clientAuth")
    return Pki(d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key", d / "client.pem",
               d / "client.key")


def _server_tls(pki: Pki, require_client: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


@pytest.fixture(scope="module")
def tls_upstream(pki: Pki) -> Iterator[RunningUpstream]:
    with RunningUpstream(tls=_server_tls(pki), host_name=HIDDEN) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_upstream(pki: Pki) -> Iterator[RunningUpstream]:
    with RunningUpstream(tls=_server_tls(pki, require_client=True), host_name="localhost") as server:
        yield server


def deployment(base_url: str, **upstream: Any) -> Deployment:
    extra = {k: upstream.pop(k) for k in ("api_key",) if k in upstream}
    return Deployment.model_validate({
        "id": "t", "provider": "openai_compatible", "model": "test-model", "base_url": base_url,
        "jurisdiction": "KR", "hosting": "domestic_cloud", "timeouts": {"connect": 3, "read": 5, "total": 10},
        "upstream": upstream, **extra})


async def ask(dep: Deployment) -> dict[str, Any]:
    provider = OpenAICompatibleProvider(dep)
    try:
        return await provider.chat(dict(CHAT))
    finally:
        await provider.close()


# --- TLS: CA bundle and client certificates (in-process provider, real sockets) -------------------


async def test_tls_upstream_is_verified_with_the_ca_bundle_and_refused_without(pki, tls_upstream):
    url = f"https://127.0.0.1:{tls_upstream.port}/v1"
    reply = await ask(deployment(url, ca_bundle=str(pki.ca)))
    assert reply["choices"][0]["message"]["content"] == tls_upstream.state.reply
    with pytest.raises(UpstreamError, match="TLS verification failed"):
        await ask(deployment(url))                                   # the system CAs do not know ours
    with pytest.raises(UpstreamError, match="TLS verification failed"):
        await ask(deployment(url, ca_bundle=str(pki.other_ca)))     # another CA is no substitute


async def test_mutual_tls_client_certificate_is_required_and_presented(pki, mtls_upstream):
    url = mtls_upstream.base_url
    with pytest.raises(UpstreamError):
        await ask(deployment(url, ca_bundle=str(pki.ca)))           # no client certificate: refused
    before = len(mtls_upstream.state.requests)
    assert before == 0
    await ask(deployment(url, ca_bundle=str(pki.ca), client_cert=str(pki.client_cert),
                         client_key=str(pki.client_key)))
    assert [r["client_cert"] for r in mtls_upstream.state.requests] == ["nuri-gateway"]


def test_unreadable_tls_files_stop_the_adapter_with_their_path(tmp_path, pki):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match="nope.pem"):
        OpenAICompatibleProvider(deployment("https://127.0.0.1:1/v1", ca_bundle=str(missing)))


# --- proxies (in-process) ---------------------------------------------------------------------------


async def test_https_upstream_through_a_connect_proxy_and_the_environment(pki, tls_upstream, monkeypatch):
    with RunningProxy(hosts={HIDDEN: "127.0.0.1"}) as proxy:
        reply = await ask(deployment(tls_upstream.base_url, ca_bundle=str(pki.ca), proxy=proxy.url))
        assert reply["choices"][0]["message"]["content"] == tls_upstream.state.reply
        assert proxy.tunnels == [f"{HIDDEN}:{tls_upstream.port}"]

        for name in ("https_proxy", "http_proxy", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        await ask(deployment(tls_upstream.base_url, ca_bundle=str(pki.ca)))
        assert len(proxy.tunnels) == 2

        monkeypatch.setenv("NO_PROXY", "localhost,.nuri.test")
        with pytest.raises(UpstreamError):       # direct: only the proxy can resolve the name
            await ask(deployment(tls_upstream.base_url, ca_bundle=str(pki.ca)))
        monkeypatch.delenv("NO_PROXY")
        with pytest.raises(UpstreamError):       # 'direct' ignores the environment
            await ask(deployment(tls_upstream.base_url, ca_bundle=str(pki.ca), proxy="direct"))
        assert len(proxy.tunnels) == 2


async def test_proxy_credentials_and_plain_http_through_a_proxy(upstream):
    with RunningProxy(hosts={HIDDEN: "127.0.0.1"}, credentials="egress:s3cret") as proxy:
        hidden_http = f"http://{HIDDEN}:{upstream.port}/v1"
        with pytest.raises(UpstreamError):
            await ask(deployment(hidden_http, proxy=proxy.url))          # 407 without credentials
        assert proxy.refused == 1
        authed = proxy.url.replace("http://", "http://egress:s3cret@")
        reply = await ask(deployment(hidden_http, proxy=authed))
        assert reply["choices"][0]["message"]["content"] == upstream.state.reply
        assert proxy.forwarded == [f"http://{HIDDEN}:{upstream.port}/v1/chat/completions"]
        assert "proxy-authorization" not in {k.lower() for k in upstream.state.requests[-1]["headers"]}


async def test_a_refusing_proxy_is_a_retryable_connection_error(tls_upstream, pki):
    with RunningProxy(hosts={}) as proxy, pytest.raises(UpstreamError, match="connection failed") as err:
        await ask(deployment(tls_upstream.base_url, ca_bundle=str(pki.ca), proxy=proxy.url))
    assert err.value.retryable      # the proxy could not resolve the name: 502 to CONNECT


@pytest.mark.parametrize(("host", "port", "no_proxy", "exempt"), [
    ("api.example.kr", 443, "example.kr", True), ("api.example.kr", 443, ".example.kr", True),
    ("badexample.kr", 443, "example.kr", False), ("any.host", 443, "*", True),
    ("10.1.2.3", 443, "10.0.0.0/8", True), ("11.1.2.3", 443, "10.0.0.0/8", False),
    ("h.example", 8443, "h.example:443", False), ("h.example", 443, "h.example:443", True),
])
def test_no_proxy_reads_like_curl(host, port, no_proxy, exempt):
    assert bypassed(host, port, no_proxy) is exempt


# --- auth schemes and headers, config checks ---------------------------------------------------------


def test_config_rejects_inconsistent_upstream_options():
    base = ("deployments:\n  - id: d\n    provider: openai_compatible\n    base_url: {url}\n    jurisdiction: KR\n"
            "    hosting: on_prem\n")
    cases = {
        "    upstream: {auth: api-key}\n": "api-key needs api_key",
        "    api_key: k\n    upstream: {auth: none}\n": "sends no credential",
        "    upstream: {headers: {'X-Bad': \"a\\r\\nInjected: 1\"}}\n": "line break",
        "    upstream: {headers: {Host: evil}}\n": "set by Nuri itself",
        "    api_key: k\n    upstream: {headers: {Authorization: x}}\n": "carries api_key",
        "    upstream: {proxy: 'socks5://p:1080'}\n": "http:// URL",
        "    upstream: {ca_bundle: /x.pem}\n": "https:// base_url",
        "    upstream: {prox: 'http://p:3128'}\n": "did you mean 'proxy'",
    }
    for extra, why in cases.items():
        with pytest.raises(ConfigError, match=why):
            parse_config(base.format(url="http://h/v1") + extra, env={})


def test_header_values_and_proxy_come_from_the_environment_and_stay_secret():
    text = ("deployments:\n  - id: d\n    provider: openai_compatible\n    base_url: https://h/v1\n"
            "    jurisdiction: KR\n    hosting: on_prem\n    upstream:\n      headers: {X-Key: '${HDR}'}\n"
            "      proxy: ${PROXY}\n")
    cfg = parse_config(text, env={"HDR": "hdr-secret-1", "PROXY": "http://u:pw-secret@proxy:3128"})
    dep = cfg.deployments[0]
    assert dep.upstream.headers["X-Key"].get_secret_value() == "hdr-secret-1"
    shown = repr(dep) + str(dep.model_dump(mode="json")) + str(dep.public_view())
    assert "hdr-secret-1" not in shown and "pw-secret" not in shown


# --- end to end: real `nuri serve` -------------------------------------------------------------------


def test_gateway_sends_api_key_custom_headers_and_goes_through_proxies(gateway, upstream, tls_upstream, pki):
    with RunningProxy(hosts={HIDDEN: "127.0.0.1"}, credentials="gw:pw") as config_proxy, \
            RunningProxy(hosts={HIDDEN: "127.0.0.1"}) as env_proxy:
        common = {"provider": "openai_compatible", "model": "test-model", "jurisdiction": "KR",
                  "hosting": "domestic_cloud", "timeouts": {"connect": 3, "read": 5, "total": 10}}
        config = {
            "deployments": [
                {**common, "id": "azure-like", "base_url": upstream.base_url, "api_key": "${UPSTREAM_KEY}",
                 "upstream": {"auth": "api-key", "headers": {"X-NCP-CLOVASTUDIO-REQUEST-ID": "${REQ_ID}",
                                                             "X-Team": "platform"}}},
                {**common, "id": "open", "base_url": upstream.base_url, "upstream": {"auth": "none"}},
                {**common, "id": "via-config", "base_url": tls_upstream.base_url, "api_key": "k",
                 "upstream": {"proxy": "${EGRESS_PROXY}", "ca_bundle": str(pki.ca)}},
                {**common, "id": "via-env", "base_url": tls_upstream.base_url,
                 "upstream": {"ca_bundle": str(pki.ca)}},
            ],
            "ledger": {"enabled": False},
        }
        env = {"UPSTREAM_KEY": "azure-key-123", "REQ_ID": "req-7f3a",
               "EGRESS_PROXY": config_proxy.url.replace("http://", "http://gw:pw@"),
               "HTTPS_PROXY": env_proxy.url, "https_proxy": "", "NO_PROXY": "", "no_proxy": ""}
        gw = gateway(config, env=env)

        def chat(model: str) -> httpx.Response:
            return httpx.post(f"{gw.base_url}/chat/completions", json={**CHAT, "model": model}, timeout=20)

        assert chat("azure-like").status_code == 200
        sent = upstream.state.requests[-1]
        headers = {k.lower(): v for k, v in sent["headers"].items()}
        assert headers["api-key"] == "azure-key-123" and sent["authorization"] is None
        assert headers["x-ncp-clovastudio-request-id"] == "req-7f3a" and headers["x-team"] == "platform"

        assert chat("open").status_code == 200
        sent = upstream.state.requests[-1]
        assert sent["authorization"] is None and "api-key" not in {k.lower() for k in sent["headers"]}

        resp = chat("via-config")
        assert resp.status_code == 200, resp.text
        assert config_proxy.tunnels == [f"{HIDDEN}:{tls_upstream.port}"] and env_proxy.tunnels == []
        assert tls_upstream.state.requests[-1]["authorization"] == "Bearer k"

        resp = chat("via-env")
        assert resp.status_code == 200, resp.text
        assert env_proxy.tunnels == [f"{HIDDEN}:{tls_upstream.port}"]

        models = httpx.get(f"{gw.base_url}/models", timeout=10).text
        log = gw.log()
        for secret in ("azure-key-123", "req-7f3a", "gw:pw"):
            assert secret not in models and secret not in log
