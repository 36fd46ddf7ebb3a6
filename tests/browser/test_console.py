"""The web console in headless Chromium, through the sidecar, against a real server.

Drives Debian's ``/usr/bin/chromium`` with Playwright (the pip package is
only the driver; no browser is downloaded). CI needs ``apt-get install -y
chromium``; without it these tests skip with that reason, and install nothing.

The page runs under the sidecar's strict CSP; any CSP violation or script
error reported by the browser fails the test. A screenshot of the finished
session is saved to ``artifacts/console.png`` (git-ignored).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from graphgate.clients.gateway import GatewayOptions, RunningGateway, start_gateway
from graphgate.server.app import GraphgateServer
from graphgate.server.settings import Settings
from tests.support import new_email, strong_password

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium: apt-get update && apt-get install -y chromium",
)

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, async_playwright, expect


@pytest.fixture(scope="module")
async def gateway(server: GraphgateServer, settings: Settings) -> AsyncIterator[RunningGateway]:
    # Presigned uploads go straight to S3: its origin joins the CSP's connect-src.
    s3 = urlsplit(settings.s3_endpoint_url or "")
    uploads = (f"{s3.scheme}://{s3.netloc}",) if s3.netloc else ()
    options = GatewayOptions(upstream=f"127.0.0.1:{server.port}", upload_origins=uploads)
    running = await start_gateway(options, "127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield opened
    await context.close()
    assert not problems, problems


async def _sign_up(page: Page, name: str, email: str, password: str) -> None:
    form = page.locator("#sign-up-form")
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=email]").fill(email)
    await form.locator("input[name=password]").fill(password)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#status")).to_have_text("Account created.")
    await expect(page.locator("#workspace")).to_be_visible()
    await expect(page.locator("#auth")).to_be_hidden()


async def _sign_in(page: Page, email: str, password: str) -> None:
    form = page.locator("#sign-in-form")
    await form.locator("input[name=email]").fill(email)
    await form.locator("input[name=password]").fill(password)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#workspace")).to_be_visible()


async def _run_query(page: Page, text: str) -> None:
    await page.locator("#query-text").fill(text)
    await page.locator("#query-form button[type=submit]").click()


async def test_console_session_graph_query_and_upload(gateway: RunningGateway, page: Page) -> None:
    """Sign up, sign out, sign in, create a graph, see query rows, upload a CSV.

    While GraphService or UploadService answer UNIMPLEMENTED, the console must
    show that error; the rest of the walk runs once they serve.
    """
    email, password = new_email(), strong_password()
    hostile = "<img src=x onerror=alert(1)>"
    await page.goto(gateway.url + "/")
    await expect(page.locator("#auth")).to_be_visible()

    await _sign_up(page, hostile, email, password)
    # C14: the name is shown as text, never parsed as markup.
    await expect(page.locator("#whoami")).to_contain_text(hostile)
    assert await page.locator("#whoami img").count() == 0

    await page.locator("#sign-out").click()
    await expect(page.locator("#auth")).to_be_visible()
    await expect(page.locator("#workspace")).to_be_hidden()
    await expect(page.locator("#status")).to_have_text("Signed out.")
    assert await page.evaluate("sessionStorage.length") == 0
    await _sign_in(page, email, password)
    await expect(page.locator("#status")).to_have_text("Signed in.")

    graph_name = f"people {secrets.token_hex(3)}"
    create = page.locator("#create-graph-form")
    await create.locator("input[name=name]").fill(graph_name)
    await create.locator("textarea[name=schema]").fill(
        "CREATE NODE TABLE Person(name STRING PRIMARY KEY, age INT64)"
    )
    await create.locator("button[type=submit]").click()
    status = page.locator("#status")
    await expect(status).not_to_have_text("")
    if "error" in (await status.get_attribute("class") or ""):
        await expect(status).to_contain_text("not implemented")
        await _screenshot(page)
        return

    await expect(status).to_have_text(f"Graph {graph_name} created.")
    await expect(page.locator("#graph-list")).to_contain_text(graph_name)
    await expect(page.locator("#current-graph")).to_have_text(f"on {graph_name}")

    await _run_query(page, "UNWIND [1, 2, 3] AS x RETURN x")
    await expect(page.locator("#results tbody tr")).to_have_count(3)
    await expect(page.locator("#results thead th")).to_have_text(["x"])
    await expect(page.locator("#results tbody td")).to_have_text(["1", "2", "3"])
    await expect(page.locator("#query-summary")).to_contain_text("3 row(s)")

    await _upload_csv(page)
    await _screenshot(page)


async def _upload_csv(page: Page) -> None:
    form = page.locator("#upload-form")
    await form.locator("input[name=table]").fill("Person")
    await form.locator("input[name=file]").set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": b"name,age\nAda,36\nAlan,41\n"}
    )
    await form.locator("button[type=submit]").click()
    status = page.locator("#status")
    await expect(status).not_to_have_text("")
    if "error" in (await status.get_attribute("class") or ""):
        await expect(status).to_contain_text("not implemented")
        return
    await expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    await expect(page.locator("#upload-status")).to_have_text("Loaded 2 rows into Person.")
    await _run_query(page, "MATCH (p:Person) RETURN p.name, p.age ORDER BY p.name")
    await expect(page.locator("#results tbody td")).to_have_text(["Ada", "36", "Alan", "41"])


async def _screenshot(page: Page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)


async def test_console_restores_its_session_and_refuses_bad_sign_in(
    gateway: RunningGateway, page: Page
) -> None:
    """A reload keeps the tab's session (sessionStorage); a wrong password is
    shown as the server's generic message."""
    await page.goto(gateway.url + "/")
    await _sign_up(page, "Reloader", new_email(), strong_password())
    await page.reload()
    await expect(page.locator("#workspace")).to_be_visible()
    await expect(page.locator("#whoami")).to_contain_text("Reloader")
    await page.locator("#sign-out").click()

    form = page.locator("#sign-in-form")
    await form.locator("input[name=email]").fill(new_email())
    await form.locator("input[name=password]").fill("Wrong-password-123!")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#status")).to_have_class("status error")
    await expect(page.locator("#auth")).to_be_visible()
