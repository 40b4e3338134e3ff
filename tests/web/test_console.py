"""The operations console in headless Chromium (Playwright) against a real `nuri serve`.

What an operator would notice: sign in with the admin key; requests sent through the OpenAI SDK
move the overview's numbers without a reload; explain shows the decision for a pasted prompt;
the audit filter narrows the trail; verify says the chain is intact, and on a tampered copy names
the first bad record; a key created in the console works and stops working once revoked there;
the language switch turns the page Korean or English. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from support.processes import GatewayProcess, create_key, upstream_deployment
from support.upstream_server import RunningUpstream

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="the playwright package is not installed (pip install -e '.[dev]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
              pytest.mark.slow]

ADMIN = "console-admin-secret"
PHONE = "010-2345-6789"
PROMPT = f"제 전화번호는 {PHONE} 입니다. 회신 부탁해요."


def _config(up: RunningUpstream) -> dict[str, Any]:
    """A foreign and a domestic deployment under kr-pipa: a phone number goes abroad only masked."""
    return {"deployments": [upstream_deployment(up, "us"),
                            upstream_deployment(up, "kr", jurisdiction="KR", hosting="domestic_cloud")],
            "policy": {"packs": ["kr-pipa"]}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, RunningUpstream, Path]]:
    workdir = tmp_path_factory.mktemp("console")
    with RunningUpstream() as up:
        gw = GatewayProcess(workdir, _config(up), env={"NURI_ADMIN_KEY": ADMIN}).start()
        try:
            yield gw, up, workdir
        finally:
            gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def _page(browser: Any, lang: str = "en-US", accept: str | None = None) -> Any:
    context = browser.new_context(locale=lang, extra_http_headers={"Accept-Language": accept or lang},
                                  viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def _login(page: Any, gw: GatewayProcess, credential: str = ADMIN) -> None:
    page.goto(gw.root_url + "/console/overview")
    assert page.url.endswith("/console/login")          # nothing readable without a session
    page.get_by_label("Admin key or an admin team's API key").fill(credential)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/overview")


def _sdk(gw: GatewayProcess, key: str) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def test_overview_moves_with_traffic_and_explain_and_audit_answer(stack: Any, browser: Any, shots: Path) -> None:
    gw, _up, _ = stack
    key = create_key(gw.data_dir, "research")
    page = _page(browser)
    _login(page, gw)
    before = int(page.locator("#stat-pseudonymized").inner_text())
    abroad_before = int(page.locator("#stat-abroad").inner_text())

    client = _sdk(gw, key)
    for _ in range(3):
        reply = client.chat.completions.with_raw_response.create(
            model="us", messages=[{"role": "user", "content": PROMPT}])
        assert reply.headers["x-nuri-action"] == "pseudonymize"
    client.chat.completions.create(model="kr", messages=[{"role": "user", "content": "안녕하세요"}])

    # the live section refreshes itself (polling): no reload
    deadline = time.monotonic() + 20
    while int(page.locator("#stat-pseudonymized").inner_text()) < before + 3 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert int(page.locator("#stat-pseudonymized").inner_text()) >= before + 3
    assert page.url.endswith("/console/overview") and page.locator("#live").get_attribute("data-updated")
    assert int(page.locator("#stat-abroad").inner_text()) >= abroad_before + 3
    assert int(page.locator("#stat-in-country").inner_text()) >= 1
    assert page.locator("#top-rules tbody tr").count() >= 1 and "pipa-personal-abroad-pseudonymized" in page.locator("#top-rules").inner_text()
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # explain: classification, decision and route for a pasted prompt, no model called
    calls = len(_up.received_bodies())
    page.get_by_role("link", name="Policy").click()
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_label("Model").select_option("us")
    page.get_by_role("button", name="Explain", exact=True).click()
    assert page.locator("#explain-action").inner_text() == "pseudonymize"
    assert "phone" in page.locator("#explain-entities").inner_text().lower()
    assert "us" in page.locator("#explain-route").inner_text()
    assert len(_up.received_bodies()) == calls
    assert page.locator("#policy-rules tbody tr").count() > 3          # packs' rules with their citations
    page.screenshot(path=str(shots / "explain.png"), full_page=True)

    # audit: filter by action, then by deployment
    page.get_by_role("link", name="Audit").click()
    everything = page.locator("tr.record").count()
    page.get_by_label("Action").select_option("pseudonymize")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**action=pseudonymize**")
    rows = page.locator("tr.record")
    assert 3 <= rows.count() < everything
    assert all(text.strip() == "pseudonymize" for text in rows.locator("td:nth-child(4)").all_inner_texts())
    page.get_by_label("Action").select_option("")
    page.get_by_label("Deployment").select_option("kr")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**deployment=kr**")
    assert page.locator("tr.record").count() >= 1
    assert set(page.locator("tr.record td:nth-child(6)").all_inner_texts()) == {"kr"}

    page.get_by_role("button", name="Verify chain").click()
    assert "Chain intact" in page.locator("#verify-result").inner_text()
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    for name in ("Spend", "Deployments", "Evals", "Workload plan"):
        page.get_by_role("link", name=name).click()
        assert page.locator("h1").first.inner_text().startswith(name)
    page.get_by_role("link", name="Deployments").click()
    assert page.locator("#deployments tbody tr").count() == 2
    page.screenshot(path=str(shots / "deployments.png"), full_page=True)


def test_create_and_revoke_a_key_and_switch_language(stack: Any, browser: Any, shots: Path) -> None:
    gw, _up, _ = stack
    page = _page(browser, "en-US")
    _login(page, gw)
    page.get_by_role("link", name="Teams and keys").click()
    page.locator("#k-team").fill("console-made")
    page.locator("#k-name").fill("made in the console")
    page.get_by_role("button", name="Create", exact=True).click()
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("nuri-")
    page.reload()
    assert page.locator("#new-key-secret").count() == 0                 # shown once
    answer = _sdk(gw, secret).chat.completions.create(model="kr", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content

    row = page.locator("tr.key", has_text="made in the console")
    key_id = row.get_attribute("data-key-id")
    row.get_by_role("button", name=f"Revoke {key_id}").click()
    assert page.locator(f"tr.key[data-key-id='{key_id}'] td.status").inner_text() == "revoked"
    refused = httpx.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                         json={"model": "kr", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_api_key"
    page.screenshot(path=str(shots / "keys.png"), full_page=True)

    page.locator("#lang-ko").click()
    page.wait_for_url("**/console/keys")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.get_by_role("heading", name="팀과 키").is_visible()
    page.screenshot(path=str(shots / "keys-ko.png"), full_page=True)
    page.locator("#lang-en").click()
    assert page.get_by_role("heading", name="Teams and keys").is_visible()

    korean = _page(browser, "ko-KR", "ko-KR,ko;q=0.9,en;q=0.5")                # the browser's language first
    korean.goto(gw.root_url + "/console/login")
    assert korean.get_by_role("button", name="로그인").is_visible()

    # keyboard: the first Tab reaches the skip link, and Enter moves focus to the content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_verify_names_the_first_bad_record_of_a_tampered_copy(stack: Any, browser: Any, shots: Path,
                                                              tmp_path: Path) -> None:
    gw, up, _ = stack
    key = create_key(gw.data_dir, "tamper")
    for _ in range(3):
        _sdk(gw, key).chat.completions.create(model="kr", messages=[{"role": "user", "content": "hello"}])
    # an answered request's record is in the gateway's spool and reaches the chain a moment later:
    # the copy is taken once all three are there, so one of them is the record tampered with
    mine = '%"team":"tamper"%'
    deadline = time.monotonic() + 10
    while True:
        with contextlib.closing(sqlite3.connect(gw.data_dir / "nuri.db")) as db:
            shipped = db.execute("SELECT count(*) FROM audit_log WHERE kind = 'request' AND body LIKE ?",
                                 (mine,)).fetchone()[0]
        if shipped >= 3:
            break
        assert time.monotonic() < deadline, f"{shipped} of 3 audit records reached the chain"
        time.sleep(0.05)
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in gw.data_dir.iterdir():                     # secrets and everything but the database
        if not item.name.startswith("nuri.db") and item.is_file():
            shutil.copy2(item, copy / item.name)
    source = sqlite3.connect(gw.data_dir / "nuri.db")
    target = sqlite3.connect(copy / "nuri.db")
    source.backup(target)                                  # a consistent copy of a live database
    source.close()
    bad_seq = target.execute("SELECT seq FROM audit_log WHERE kind = 'request' AND body LIKE ? "
                             "ORDER BY seq DESC LIMIT 1 OFFSET 1", (mine,)).fetchone()[0]
    target.execute("UPDATE audit_log SET body = replace(body, '\"team\":\"tamper\"', '\"team\":\"nobody\"') "
                   "WHERE seq = ?", (bad_seq,))
    target.commit()
    target.close()

    tampered = GatewayProcess(tmp_path, _config(up), env={"NURI_ADMIN_KEY": ADMIN}, data_dir=copy).start()
    try:
        page = _page(browser)
        _login(page, tampered)
        page.get_by_role("link", name="Audit").click()
        page.get_by_role("button", name="Verify chain").click()
        result = page.locator("#verify-result")
        assert result.get_attribute("data-first-bad") == str(bad_seq)
        assert f"#{bad_seq}" in result.inner_text()
        page.screenshot(path=str(shots / "verify-tampered.png"), full_page=True)
    finally:
        tampered.stop()


def test_refusals_wrong_key_missing_csrf_expired_session(stack: Any, tmp_path: Path) -> None:
    gw, up, _ = stack
    client = httpx.Client(base_url=gw.root_url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"})
    assert client.get("/console/overview").status_code == 303                       # no session: to login
    assert client.get("/console/overview/live", headers={"x-console-fetch": "1"}).status_code == 401

    form = client.get("/console/login")
    token = client.cookies.get("nuri_console_login")
    assert 'type="password"' in form.text and token
    wrong = client.post("/console/login", data={"csrf": token, "credential": "not-the-admin-key"})
    assert wrong.status_code == 401 and "does not open the console" in wrong.text
    assert "nuri_console" not in wrong.cookies
    token = client.cookies.get("nuri_console_login")                                # a new form, a new token
    other_team = create_key(gw.data_dir, "not-admin")                              # a key without the admin role
    assert client.post("/console/login", data={"csrf": token, "credential": other_team}).status_code == 401
    token = client.cookies.get("nuri_console_login")
    no_csrf = client.post("/console/login", data={"credential": ADMIN})
    assert no_csrf.status_code == 403

    ok = client.post("/console/login", data={"csrf": token, "credential": ADMIN})
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/console" in cookie
    keys_before = client.get("/console/keys").text.count('class="key"')
    forged = client.post("/console/keys", data={"team": "forged", "name": "x"})
    assert forged.status_code == 403
    assert client.post("/console/keys", data={"team": "forged", "csrf": "wrong-token"}).status_code == 403
    assert client.get("/console/keys").text.count('class="key"') == keys_before
    assert httpx.get(gw.root_url + "/v1/nuri/admin/teams/forged", headers={"Authorization": f"Bearer {ADMIN}"},
                     timeout=30).status_code == 404

    client.post("/console/logout", data={"csrf": "wrong"})
    page = client.get("/console/keys")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/console/overview").status_code == 303                      # logged out

    short = GatewayProcess(tmp_path, _config(up), env={"NURI_ADMIN_KEY": ADMIN, "NURI_CONSOLE_SESSION_SECONDS": "1"},
                           data_dir=tmp_path / "short").start()
    try:
        c = httpx.Client(base_url=short.root_url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"})
        c.get("/console/login")
        assert c.post("/console/login", data={"csrf": c.cookies.get("nuri_console_login"),
                                              "credential": ADMIN}).status_code == 303
        assert c.get("/console/overview").status_code == 200
        time.sleep(1.5)
        expired = c.get("/console/overview")
        assert expired.status_code == 303 and expired.headers["location"] == "/console/login?expired=1"
        assert "session has ended" in c.get("/console/login?expired=1").text
    finally:
        short.stop()
