"""A feed's privileges as a table: principal by privilege, grants and restrictions (this feed's
and all feeds' rules); add and revoke through ``/api/privileges`` (Admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from berth_ui.routes.feeds import FEED_SCOPES, feed_of
from berth_ui.web import Ui, action, attempt, field_of, form_of, page

router = APIRouter(include_in_schema=False)
PRIVILEGES = ["view", "add", "overwrite", "delete", "manage", "admin"]
KINDS = [
    ("user", "User"),
    ("group", "Group"),
    ("key", "API key"),
    ("everyone", "Everyone"),
    ("authenticated", "Authenticated users"),
    ("anonymous", "Anonymous users"),
]
_LABELS = dict(KINDS)


def matrix(rules: list[dict[str, Any]], feed: str) -> list[dict[str, Any]]:
    """Rows per principal with the rules (this feed's and all feeds') per privilege."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for rule in rules:
        if rule["feed"] not in (feed, None):
            continue
        key = (rule["principal_kind"], rule["principal"])
        label = _LABELS.get(key[0], key[0]) + (f" {key[1]}" if key[1] else "")
        row = rows.setdefault(key, {"label": label, "cells": {}})
        row["cells"].setdefault(rule["privilege"], []).append(rule)
    return [
        rows[k]
        for k in sorted(
            rows, key=lambda k: ([x for x, _ in KINDS].index(k[0]) if k[0] in _LABELS else 9, k[1])
        )
    ]


@router.get("/ui/feeds/{feed}/privileges")
@page
async def privileges(request: Request, feed: str) -> Response:
    """The table and the form to add a rule."""
    ui = await Ui.open(request, FEED_SCOPES)
    row = await feed_of(ui, feed)
    rules = await ui.get("/api/privileges")
    users = [u["name"] for u in await ui.get("/api/users")]
    groups = [g["name"] for g in await ui.get("/api/groups")]
    return ui.render(
        "privileges.html",
        feed=row,
        principals=matrix(rules, feed),
        privileges=PRIVILEGES,
        kinds=KINDS,
        known=sorted({*users, *groups}),
    )


@router.post("/ui/feeds/{feed}/privileges")
@action
async def add_rule(request: Request, feed: str) -> Response:
    """Add a grant or restriction on this feed (or all feeds)."""
    form = await form_of(request)
    body = {
        "principal_kind": field_of(form, "principal_kind", 20),
        "principal": field_of(form, "principal", 64),
        "privilege": field_of(form, "privilege", 20),
        "effect": field_of(form, "effect", 10) or "grant",
        "feed": None if field_of(form, "scope", 10) == "all" else feed,
    }
    ui = await Ui.open(request, FEED_SCOPES)
    call = ui.api("POST", "/api/privileges", json=body)
    return await attempt(ui, f"/ui/feeds/{feed}/privileges", call, "Rule added.")


@router.post("/ui/feeds/{feed}/privileges/{rule_id}/revoke")
@action
async def revoke_rule(request: Request, feed: str, rule_id: str) -> Response:
    """Remove a grant or restriction."""
    ui = await Ui.open(request, FEED_SCOPES)
    call = ui.api("DELETE", f"/api/privileges/{rule_id}")
    return await attempt(ui, f"/ui/feeds/{feed}/privileges", call, "Rule revoked.")
