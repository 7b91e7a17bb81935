"""What skopeo tells its user when Berth refuses a push because of the name or the privileges.

skopeo (containers/image) parses a ``4XX`` body as Distribution's ``{"errors": [...]}`` and
prints ``<code in words>: <message>``; a HEAD has no body, so for a blob HEAD it prints only the
status ("failed to read from destination repository busybox: 400 (Bad Request)") unless the
answer is ``404`` (then it goes on to the upload POST, whose body it prints) or ``401`` with an
``error_description`` in the Bearer challenge (RFC 6750 §3; printed as ``denied: <description>``).
Each test asserts the reason reaches skopeo's stderr (issue 13 §2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import describe, run, skopeo_copy_cmd
from tests.e2e.conftest import Registry, fresh_name
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _berth_only(registry: Registry) -> None:
    if registry.kind != "berth":
        pytest.skip("Berth's feed rules and messages")


def refused_push(registry: Registry, layout: Path, name: str, *creds: str, tag: str = "v1") -> str:
    """skopeo's stderr for a push of ``layout:TAG`` to ``name:v1`` that must fail."""
    copy = skopeo_copy_cmd(f"oci:{layout}:{tag}", f"docker://{registry.host}/{name}:v1", *creds)
    done = run(copy, check=False)
    assert done.returncode != 0, describe(done)
    return done.stderr


def admin(registry: Registry, method: str, path: str, body: dict[str, Any]) -> None:
    """One admin API call (users, privileges)."""
    r = httpx.request(
        method,
        f"http://{registry.host}{path}",
        json=body,
        timeout=30.0,
        auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
    )
    assert r.status_code < 300, r.text


def user_with(registry: Registry, feed: str, privilege: str) -> str:
    """``--dest-creds`` of a fresh user holding ``privilege`` on ``feed``."""
    name, password = fresh_name("u"), fresh_name("pw")
    admin(registry, "POST", "/api/users", {"name": name, "password": password})
    rule = {"principal_kind": "user", "principal": name, "privilege": privilege, "feed": feed}
    admin(registry, "POST", "/api/privileges", rule)
    return f"{name}:{password}"


def test_single_component_name_says_names_are_feed_slash_image(registry: Registry, layout: Path) -> None:
    err = refused_push(registry, layout, "busybox")
    assert "400 (Bad Request)" not in err, err
    assert "name invalid: invalid repository name 'busybox'" in err, err
    assert "repository names are FEED/IMAGE" in err and "FEED/busybox" in err, err


def test_missing_feed_says_create_it(registry: Registry, layout: Path) -> None:
    feed = fresh_name("nofeed")
    err = refused_push(registry, layout, f"{feed}/busybox")
    assert f"name unknown: feed '{feed}' does not exist" in err, err
    assert "berth feed create" in err, err


def test_missing_privilege_names_who_may_not_do_what(registry: Registry, layout: Path) -> None:
    """A user who may view but not push: the upload POST's challenge says why (``denied: …``)."""
    feed = registry.new_feed()
    creds = user_with(registry, feed, "view")
    err = refused_push(registry, layout, f"{feed}/img", "--dest-creds", creds)
    user = creds.split(":")[0]
    assert f"denied: insufficient privileges: {user} may not push {feed}/img" in err, err


def test_no_access_at_all_is_explained_on_the_blob_head(registry: Registry, layout: Path) -> None:
    """Without view, the blob HEAD is already refused (401, no body): the description carries it."""
    feed = registry.new_feed()
    other = registry.new_feed()
    creds = user_with(registry, other, "add")
    err = refused_push(registry, layout, f"{feed}/img", "--dest-creds", creds)
    assert f"may not pull {feed}/img" in err, err


def test_overwrite_without_the_privilege_is_denied_with_the_reason(
    registry: Registry, layout: Path, tmp_path: Path
) -> None:
    """403 DENIED has a body: skopeo prints its message (this worked before; pinned here)."""
    feed = registry.new_feed()
    creds = user_with(registry, feed, "add")
    run(skopeo_copy_cmd(f"oci:{layout}:v1", f"docker://{registry.host}/{feed}/img:v1", "--dest-creds", creds))
    other = tmp_path / "other"
    oci_layout.build_image(other, "v2", labels={"variant": "other"})
    err = refused_push(registry, other, f"{feed}/img", "--dest-creds", creds, tag="v2")
    assert "denied: tag 'v1' exists; moving it to another manifest needs the Overwrite privilege" in err, err
