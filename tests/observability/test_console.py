"""The usage console at /ui in a real browser: Playwright driving Debian's Chromium (the browser
cannot be downloaded here) signs in with the master key after a key was made through the admin
API and traffic sent, and checks that the tables and charts show it. A screenshot of each page
is written under the test's output directory."""

from __future__ import annotations

import shutil

import httpx
import pytest

from ocilm.gateway import create_app, parse_config
from ocilm.testing import BackgroundServer, Fault

MASTER = "sk-master-console-1"
ADMIN = {"authorization": f"Bearer {MASTER}"}
HI = [{"role": "user", "content": "Hello there"}]
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def gateway(creds, tmp_path):
    price = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
    config = {
        "model_list": [
            {"model_name": "llama", "litellm_params": {"model": "oci/meta.llama-3.3-70b-instruct", **creds, **price}},
            {"model_name": "grok", "litellm_params": {"model": "oci/xai.grok-3", **creds, **price}},
            {"model_name": "flaky", "litellm_params": {"model": "oci/xai.grok-3", **creds, **price, "max_retries": 0,
             "extra_headers": {"x-ocilm-sim-fault": Fault(status=500, times=None).header()}}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'console.db'}"},
    }  # fmt: skip
    with BackgroundServer(create_app(parse_config(config))) as server:
        yield server


def test_an_operator_sees_keys_spend_traffic_and_requests(gateway, browser, tmp_path):
    base = gateway.base_url
    team = httpx.post(f"{base}/team/new", headers=ADMIN, json={"team_alias": "research", "max_budget": 50, "rpm_limit": 600}, timeout=30).json()
    made = httpx.post(f"{base}/key/generate", headers=ADMIN, json={"key_alias": "ana-laptop", "team_id": team["team_id"], "max_budget": 20,
                                                                   "rpm_limit": 60}, timeout=30).json()  # fmt: skip
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {made['key']}"}, timeout=30) as http:
        for model, times in (("llama", 5), ("grok", 3), ("flaky", 2)):
            for _ in range(times):
                http.post("/v1/chat/completions", json={"model": model, "messages": HI, "max_tokens": 20})
    spent = httpx.get(f"{base}/key/info", headers=ADMIN, params={"key": made["token"]}, timeout=30).json()["info"]["spend"]
    assert spent > 0

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests_seen: list[str] = []
    page.on("request", lambda r: requests_seen.append(r.url))
    page.goto(f"{base}/ui")
    page.fill("#master-key", "sk-not-the-master")
    page.click("#login-form button")
    page.wait_for_selector("#login-error:has-text('not the master key')")
    page.fill("#master-key", MASTER)
    page.click("#login-form button")

    page.wait_for_selector("body[data-loaded='keys']")
    keys = page.inner_text("#keys-table")
    assert "ana-laptop" in keys and made["token"] in keys and team["team_id"] in keys and f"${spent:.6f}" in keys and "60" in keys
    assert "research" in page.inner_text("#teams-table")
    assert made["key"] not in page.content()  # the secret is never shown again
    page.screenshot(path=str(tmp_path / "console-keys.png"), full_page=True)

    page.click("#tabs button[data-page='usage']")
    page.wait_for_selector("body[data-loaded='usage']")
    groups = page.eval_on_selector_all("#requests-chart polyline", "lines => lines.map(l => l.dataset.group)")
    assert sorted(groups) == ["flaky", "grok", "llama"]
    assert int(page.get_attribute("#spend-chart svg", "data-points")) >= 3
    page.screenshot(path=str(tmp_path / "console-usage.png"), full_page=True)
    page.select_option("#group-by", "key")
    page.wait_for_selector("body[data-loaded='usage']")
    assert page.eval_on_selector_all("#requests-chart polyline", "lines => lines.map(l => l.dataset.group)") == [made["token"]]

    page.click("#tabs button[data-page='models']")
    page.wait_for_selector("body[data-loaded='models']")
    rows = {r[0]: r for r in page.eval_on_selector_all("#models-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")}
    assert rows["llama"][1] == "5" and rows["llama"][2] == "0.0%" and rows["grok"][1] == "3"
    assert rows["flaky"][1] == "2" and rows["flaky"][2] == "100.0%"
    assert page.locator("#latency-chart rect[data-model='llama']").count() == 2  # p50 and p99 bars
    page.screenshot(path=str(tmp_path / "console-models.png"), full_page=True)

    page.click("#tabs button[data-page='requests']")
    page.wait_for_selector("body[data-loaded='requests']")
    statuses = page.eval_on_selector_all("#requests-table tbody tr td:nth-child(6)", "cells => cells.map(c => c.innerText)")
    assert sorted(statuses) == ["200"] * 8 + ["502"] * 2
    page.screenshot(path=str(tmp_path / "console-requests.png"), full_page=True)

    assert all(url.startswith(base) for url in requests_seen)  # every script, style and call stays on the gateway
    for name in ("keys", "usage", "models", "requests"):
        assert (tmp_path / f"console-{name}.png").stat().st_size > 10_000
    page.close()


def test_an_operator_manages_keys_and_teams_finds_a_request_and_reads_the_audit_trail(gateway, browser, tmp_path):
    """Every change through the console's forms (the admin API underneath), confirmation before the
    destructive ones, the new key shown once, errors shown, the request found by its call id in
    the database, and each change in the audit trail."""
    base = gateway.base_url
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
    page.goto(f"{base}/ui")
    page.fill("#master-key", MASTER)
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.wait_for_selector("body[data-loaded='keys']")

    page.click("#new-team")
    page.fill("#field-team_alias", "platform")
    page.fill("#field-max_budget", "40")
    page.click("#edit-save")
    page.wait_for_selector("#notice:has-text('created')")
    team = next(t for t in httpx.get(f"{base}/team/list", headers=ADMIN, timeout=30).json() if t["team_alias"] == "platform")
    assert team["max_budget"] == 40

    page.click("#new-key")
    page.fill("#field-key_alias", "ci-bot")
    page.select_option("#field-team_id", team["team_id"])
    page.fill("#field-max_budget", "-3")  # the browser refuses it before anything is sent
    assert page.eval_on_selector("#field-max_budget", "i => i.validity.valid") is False
    page.fill("#field-max_budget", "5")
    page.fill("#field-budget_duration", "fortnight")  # the API refuses it, and the console says why
    page.click("#edit-save")
    page.wait_for_selector("#edit-error:has-text('budget_duration')")
    page.fill("#field-budget_duration", "30d")
    page.click("#edit-save")
    page.wait_for_selector("#secret-dialog[open]")
    secret = page.inner_text("#secret-value")
    assert secret.startswith("sk-")
    page.click("#secret-done")
    page.wait_for_selector("body[data-loaded='keys']")
    assert secret not in page.content()  # shown once, then gone from the page
    key = next(k for k in httpx.get(f"{base}/key/list", headers=ADMIN, timeout=30).json()["keys"] if k["key_alias"] == "ci-bot")
    assert key["team_id"] == team["team_id"] and key["max_budget"] == 5 and key["budget_duration"] == "30d"

    reply = httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {secret}"}, timeout=30,
                       json={"model": "llama", "messages": HI, "max_tokens": 5})  # fmt: skip
    assert reply.status_code == 200
    call_id = reply.headers["x-litellm-call-id"]

    row = page.locator("#keys-table tbody tr", has_text="ci-bot")
    row.get_by_role("button", name="Edit").click()
    page.fill("#field-max_budget", "25")
    page.click("#edit-save")
    page.wait_for_selector("#notice:has-text('saved')")
    assert httpx.get(f"{base}/key/info", headers=ADMIN, params={"key": key["token"]}, timeout=30).json()["info"]["max_budget"] == 25

    page.locator("#keys-table tbody tr", has_text="ci-bot").get_by_role("button", name="Block").click()
    page.wait_for_selector("#confirm-dialog[open]")
    assert page.evaluate("document.activeElement.id") == "confirm-no"  # the safe choice has the focus
    page.click("#confirm-yes")
    page.wait_for_selector("#notice:has-text('blocked')")
    blocked = httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {secret}"}, timeout=30,
                         json={"model": "llama", "messages": HI, "max_tokens": 5})  # fmt: skip
    assert blocked.status_code == 401
    page.screenshot(path=str(tmp_path / "console-manage.png"), full_page=True)

    page.click("#tabs button[data-page='requests']")
    page.wait_for_selector("body[data-loaded='requests']")
    page.fill("#search-request-id", call_id)
    page.click("#search-form button[type='submit']")
    page.wait_for_function(f"document.querySelectorAll('#requests-table tbody tr').length === 1 && "
                           f"document.querySelector('#requests-table tbody').innerText.includes('{call_id}')")  # fmt: skip
    page.fill("#search-request-id", "")
    page.fill("#search-status", "abc")
    page.click("#search-form button[type='submit']")
    page.wait_for_selector("#search-error:has-text('status')")
    page.screenshot(path=str(tmp_path / "console-search.png"), full_page=True)

    page.click("#tabs button[data-page='audit']")
    page.wait_for_selector("body[data-loaded='audit']")
    audit = page.inner_text("#audit-table")
    for action in ("team.new", "key.generate", "key.update", "key.block"):
        assert action in audit
    assert "max_budget: 5 → 25" in audit and secret not in page.content()
    page.screenshot(path=str(tmp_path / "console-audit.png"), full_page=True)
    page.close()
