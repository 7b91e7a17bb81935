"""``berth tag history FEED/IMAGE[:TAG]`` against a real ``berth up`` after real pushes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import run
from tests.e2e.conftest import scratch_database, scratch_stream, target_kind
from tests.e2e.test_cli import berth
from tests.support.berth_process import ADMIN_PASSWORD, berth_process
from tests.support.databases import NATS_URL

pytestmark = pytest.mark.e2e


def test_tag_history_command(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's CLI")
    layout = scratch_dir / "oci"
    first = oci_layout.build_image(layout, "a", labels={"n": "1"})
    second = oci_layout.build_image(layout, "b", labels={"n": "2"})
    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(scratch_dir, database_url=dsn, nats_url=NATS_URL, stream=stream) as server,
    ):
        server.create_feed("hist")
        for tag in ("a", "b"):
            run(
                [
                    "skopeo",
                    "copy",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    f"admin:{ADMIN_PASSWORD}",
                    f"oci:{layout}:{tag}",
                    f"docker://{server.host}/hist/app:latest",
                ]
            )
        env = {"BERTH_URL": server.url, "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
        lines = berth("tag", "history", "hist/app:latest", "--json", env=env).stdout.splitlines()
        entries = [json.loads(line) for line in lines]
        assert [(e["type"], e["digest"], e["previous_digest"], e["actor"]) for e in entries] == [
            ("tag.updated", second, first, "admin"),
            ("tag.updated", first, None, "admin"),
        ]
        table = berth("tag", "history", "hist/app", env=env).stdout
        assert "moved" in table and "created" in table and first.split(":")[1][:12] in table
        anonymous = berth(
            "tag", "history", "hist/app", env={"BERTH_URL": server.url, "BERTH_ADMIN_PASSWORD": ""}, ok=False
        )
        assert anonymous.returncode == 1 and "UNAUTHORIZED" in anonymous.stderr
        missing = berth("tag", "history", "hist/nothing", env=env, ok=False)
        assert missing.returncode == 1 and "NAME_UNKNOWN" in missing.stderr
