"""``berth tag history`` argument parsing and wording (the command itself: tests/e2e)."""

from __future__ import annotations

import pytest
import typer

from berth.tag_cli import change_of, split_reference


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("dmc/app", ("dmc/app", None)),
        ("dmc/app:v1", ("dmc/app", "v1")),
        ("dmc/team/app:1.0-rc", ("dmc/team/app", "1.0-rc")),
    ],
)
def test_split_reference(reference: str, expected: tuple[str, str | None]) -> None:
    assert split_reference(reference) == expected


@pytest.mark.parametrize("reference", ["app", "app:v1", "dmc/", "/app", "dmc/app:", "dmc//app"])
def test_split_reference_refuses_what_is_not_feed_image(reference: str) -> None:
    with pytest.raises(typer.BadParameter):
        split_reference(reference)


def test_change_of() -> None:
    assert change_of({"type": "tag.updated", "previous_digest": None}) == "created"
    assert change_of({"type": "tag.updated", "previous_digest": "sha256:a"}) == "moved"
    assert change_of({"type": "tag.deleted"}) == "deleted"
    assert change_of({"type": "manifest.deleted"}) == "manifest deleted"
