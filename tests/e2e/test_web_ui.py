"""The web UI in a real browser (issue 11): Playwright driving Debian's Chromium against a real
``berth up``, with skopeo pushing real images.

One flow as a registry admin would walk it — log in, create a feed, push, see repository and
tag, open the manifest and its layers, move the tag and read its history, delete the tag,
create an API key and push with it, grant and revoke a privilege, log out — plus what must be
refused: a user without privileges sees nothing of a private feed, a POST without the CSRF
token does nothing, a logged-out session's cookie no longer works, and ``/api/docs`` renders
with every request to another host blocked. Screenshots of the main pages at 1366 px and
390 px go to the test's temp folder (printed; CI keeps it as an artifact).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.e2e import oci_layout
from tests.e2e.clients import run
from tests.e2e.conftest import scratch_database, scratch_stream, target_kind
from tests.support.berth_process import ADMIN_PASSWORD, BerthProcess, berth_process
from tests.support.databases import NATS_URL

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {"laptop": (1366, 860), "phone": (390, 844)}
BOB_PASSWORD = "bob-pw-1"
DATABASE: dict[str, str] = {}  # the server's database URL, by host


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthProcess]:
    if target_kind() != "berth":
        pytest.skip("Berth's web UI")
    if not CHROMIUM.exists() or shutil.which("skopeo") is None:
        pytest.skip("needs /usr/bin/chromium and skopeo (scripts/test installs them)")
    workdir = Path(tmp_path_factory.mktemp("ui-server", numbered=True))
    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(workdir, database_url=dsn, nats_url=NATS_URL, stream=stream) as running,
    ):
        DATABASE[running.host] = dsn
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui-screenshots", numbered=False)
    print(f"\nweb UI screenshots: {folder}")
    return folder


def shoot(page: Page, folder: Path, name: str) -> None:
    """Full-page screenshots of the current page at both widths; the page must fit each width
    (only tables scroll sideways, inside their own region)."""
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} is {overflow} px wide at {label} width {width}"
    page.set_viewport_size({"width": 1366, "height": 860})


def new_page(browser: Browser, server: BerthProcess) -> Page:
    context = browser.new_context(base_url=server.url, viewport={"width": 1366, "height": 860})
    context.set_default_timeout(15_000)
    return context.new_page()


def log_in(page: Page, user: str, password: str) -> None:
    page.goto("/ui/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/ui/feeds$"))


def push(server: BerthProcess, layout: Path, src_tag: str, dest: str, creds: str) -> None:
    run(
        [
            "skopeo",
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            f"oci:{layout}:{src_tag}",
            f"docker://{server.host}/{dest}",
        ]
    )


def test_web_ui_flow(server: BerthProcess, browser: Browser, shots: Path, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    oci_layout.build_image(layout, "one", labels={"org.opencontainers.image.title": "first"})
    oci_layout.build_image(layout, "two", labels={"org.opencontainers.image.title": "second"})
    admin = f"admin:{ADMIN_PASSWORD}"
    page = new_page(browser, server)

    # anonymous: no public feed yet; the root leads to the feeds
    page.goto("/")
    expect(page).to_have_url(re.compile(r".*/ui/feeds$"))
    expect(page.get_by_text("There is no public feed")).to_be_visible()
    page.goto("/ui/login")
    shoot(page, shots, "login")

    log_in(page, "admin", ADMIN_PASSWORD)
    expect(page.locator("header")).to_contain_text("admin")

    # create a feed through the form
    page.get_by_label("Name", exact=True).fill("webui")
    page.get_by_label("Description").fill("made in the browser")
    page.get_by_role("button", name="Create feed").click()
    expect(page).to_have_url(re.compile(r".*/ui/feeds/webui$"))
    expect(page.get_by_role("status")).to_contain_text("Feed webui created")

    # push with skopeo; the repository and the tag appear
    push(server, layout, "one", "webui/app:v1", admin)
    page.goto("/ui/feeds")
    expect(page.get_by_role("row", name=re.compile("webui"))).to_contain_text("1")
    shoot(page, shots, "feeds")
    page.get_by_role("link", name="webui").click()
    page.get_by_role("link", name="app", exact=True).click()
    expect(page).to_have_url(re.compile(r".*/ui/repositories/webui/app$"))
    expect(page.get_by_role("heading", name="v1")).to_be_visible()
    expect(page.locator(".copy code").first).to_have_text(f"docker pull {server.host}/webui/app:v1")
    expect(page.locator(".tag")).to_contain_text("by admin")
    shoot(page, shots, "tags")

    # the manifest with its layers and config
    page.get_by_role("link", name="v1", exact=True).click()
    expect(page.get_by_role("heading", name="Layers")).to_be_visible()
    layers = page.get_by_role("region", name="Layers")
    expect(layers).to_contain_text("application/vnd.oci.image.layer.v1.tar+gzip")
    expect(page.get_by_role("heading", name="Configuration")).to_be_visible()
    expect(page.get_by_text("/bin/busybox").first).to_be_visible()
    expect(page.get_by_role("region", name="Labels")).to_contain_text("first")
    shoot(page, shots, "manifest")

    # move the tag, then read its history
    push(server, layout, "two", "webui/app:v1", admin)
    page.goto("/ui/repositories/webui/app")
    page.get_by_role("link", name="Tag history").click()
    rows = page.get_by_role("region", name="Tag history").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("moved")
    expect(rows.nth(1)).to_contain_text("created")
    shoot(page, shots, "history")

    # delete the tag (with confirmation); the history records it
    page.goto("/ui/repositories/webui/app")
    page.get_by_role("link", name="Delete tag v1").click()
    expect(page.get_by_role("heading", name="Delete tag v1?")).to_be_visible()
    shoot(page, shots, "confirm-delete")
    page.get_by_role("button", name="Delete tag v1").click()
    expect(page.get_by_role("status")).to_contain_text("Tag v1 deleted")
    expect(page.get_by_text("This image has no tags.")).to_be_visible()
    page.goto("/ui/repositories/webui/app/-/history?tag=v1")
    expect(page.get_by_role("region", name="Tag history").locator("tbody tr").first).to_contain_text(
        "deleted"
    )

    # an API key, shown once, works with skopeo
    page.goto("/ui/keys")
    page.get_by_label("Description").fill("ci pusher")
    page.get_by_label("Feeds").fill("webui")
    page.get_by_label("Add", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
    key = page.locator(".new-key .copy code").first.inner_text().strip()
    shoot(page, shots, "keys")
    push(server, layout, "one", "webui/app:v2", f"api:{key}")
    page.goto("/ui/keys")
    expect(page.locator(".new-key")).to_have_count(0)  # never shown again
    page.goto("/ui/repositories/webui/app")
    expect(page.locator(".tag")).to_contain_text("by api-key:")

    # a user without privileges sees nothing of the private feed
    page.goto("/ui/users")
    page.get_by_label("Name", exact=True).fill("bob")
    page.get_by_label("Password").fill(BOB_PASSWORD)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_contain_text("User bob added")
    shoot(page, shots, "users")
    bob = new_page(browser, server)
    log_in(bob, "bob", BOB_PASSWORD)
    expect(bob.get_by_text("You may see no feed yet.")).to_be_visible()
    for path in ("/ui/feeds/webui", "/ui/repositories/webui/app", "/ui/repositories/webui/app/-/history"):
        bob.goto(path)
        expect(bob.get_by_role("heading", name="Not found")).to_be_visible()
        expect(bob.locator("main")).not_to_contain_text("app")

    # grant View to bob on the feed: he sees it; revoke: he sees nothing again
    page.goto("/ui/feeds/webui/privileges")
    page.get_by_label("Principal kind").select_option("user")
    page.get_by_label("Name", exact=False).first.fill("bob")
    page.get_by_label("Privilege", exact=True).select_option("view")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_contain_text("Rule added")
    row = page.get_by_role("row", name=re.compile("User bob"))
    expect(row).to_contain_text("Granted")
    shoot(page, shots, "privileges")
    bob.goto("/ui/feeds/webui")
    expect(bob.get_by_role("link", name="app", exact=True)).to_be_visible()
    bob.goto("/ui/repositories/webui/app")
    expect(bob.get_by_role("link", name="Delete tag v2")).to_have_count(0)  # View only
    row.get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.get_by_role("status")).to_contain_text("Rule revoked")
    bob.goto("/ui/feeds")
    expect(bob.get_by_text("You may see no feed yet.")).to_be_visible()
    bob.goto("/ui/feeds/webui")
    expect(bob.get_by_role("heading", name="Not found")).to_be_visible()

    # a POST without (or with a wrong) CSRF token changes nothing
    forms: list[dict[str, str | float | bool]] = [{"name": "evil"}, {"name": "evil", "csrf": "0" * 64}]
    for form in forms:
        refused = page.request.post("/ui/feeds", form=form, max_redirects=0)
        assert refused.status == 403, refused.text()
    page.goto("/ui/feeds")
    expect(page.get_by_role("link", name="evil")).to_have_count(0)

    # the feed's settings: a typed confirmation guards deletion
    page.goto("/ui/feeds/webui/settings")
    shoot(page, shots, "feed-settings")
    delete = page.get_by_role("button", name="Delete feed webui")
    expect(delete).to_be_disabled()
    page.get_by_label("Type webui to confirm").fill("webui")
    expect(delete).to_be_enabled()

    # log out: the session cookie no longer works, even if kept
    session = next(c for c in page.context.cookies() if c["name"] == "berth_session")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_contain_text("You are logged out")
    expect(page.locator("header")).to_contain_text("Log in")
    stolen = new_page(browser, server)
    stolen.context.add_cookies([{"name": session["name"], "value": session["value"], "url": server.url}])
    stolen.goto("/ui/feeds")
    expect(stolen.get_by_role("alert")).to_contain_text("Your session has ended")
    expect(stolen.locator("header")).not_to_contain_text("Log out")


def test_api_docs_work_offline(server: BerthProcess, browser: Browser, shots: Path) -> None:
    page = new_page(browser, server)
    local = urlsplit(server.url).netloc
    elsewhere: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc != local:
            elsewhere.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", only_local)
    page.goto("/api/docs")
    expect(page.get_by_text("/api/feeds").first).to_be_visible()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Berth")
    shoot(page, shots, "api-docs")
    assert elsewhere == []


def test_cleanup_page_runs_gc_dry_and_for_real(server: BerthProcess, browser: Browser, shots: Path) -> None:
    """Issue 11's cleanup page: an admin sees recent gc runs and runs one, dry first (counts,
    nothing deleted), then for real (the blob is gone); both runs are listed."""
    import asyncio
    import concurrent.futures
    import hashlib
    import os

    import asyncpg
    import httpx

    from berth.token_auth import RegistryAuth

    auth = RegistryAuth("admin", ADMIN_PASSWORD)
    assert httpx.post(f"{server.url}/api/feeds", json={"name": "cleanme"}, auth=auth).status_code == 201
    data = os.urandom(1500)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pushed = httpx.post(f"{server.url}/v2/cleanme/x/blobs/uploads/?digest={digest}", content=data, auth=auth)
    assert pushed.status_code == 201, pushed.text

    async def age() -> None:  # pushed two hours ago, past gc.grace_seconds (1 h)
        conn = await asyncpg.connect(DATABASE[server.host])
        try:
            await conn.execute("UPDATE blob.links SET linked_at = now() - interval '2 hours'")
            await conn.execute("UPDATE blob.blobs SET created_at = now() - interval '2 hours'")
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        pool.submit(asyncio.run, age()).result()
    page = new_page(browser, server)
    log_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Cleanup").click()
    page.wait_for_url(re.compile(r".*/ui/cleanup$"))
    expect(page.get_by_role("heading", name="Cleanup", level=1)).to_be_visible()
    page.get_by_label("Feed (empty: all feeds)").fill("cleanme")
    expect(page.get_by_label("Dry run (count only, delete nothing)")).to_be_checked()
    page.get_by_role("button", name="Run cleanup").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Dry run: would delete 1 blobs and 0 upload sessions, 1500 bytes."
    )
    assert httpx.head(f"{server.url}/v2/cleanme/x/blobs/{digest}", auth=auth).status_code == 200
    page.get_by_label("Feed (empty: all feeds)").fill("cleanme")
    page.get_by_label("Dry run (count only, delete nothing)").uncheck()
    page.get_by_role("button", name="Run cleanup").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted 1 blobs and 0 upload sessions, 1500 bytes.")
    assert httpx.head(f"{server.url}/v2/cleanme/x/blobs/{digest}", auth=auth).status_code == 404
    rows = page.get_by_role("region", name="Recent runs").locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("succeeded")
    expect(rows.nth(0).locator("td").nth(3)).to_have_text("no")
    expect(rows.nth(1).locator("td").nth(3)).to_have_text("yes")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("cleanme")
    shoot(page, shots, "cleanup")
