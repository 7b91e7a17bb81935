"""A repository's pages: its tags, one manifest, the tag history; deleting a tag or a manifest.

Tags and history come from the browse API (``/api/repositories/<name>/…``); the manifest, its
image config and its referrers from the registry API (``/v2/<name>/…``), exactly as a client
pulls them; deletions are the registry API's ``DELETE …/manifests/<tag|digest>``, so the
Delete privilege is checked where it always is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from berth_ui.backend import ApiError
from berth_ui.manifests import ACCEPT, parse_config, parse_manifest
from berth_ui.paging import Pages, page_params
from berth_ui.web import Ui, action, attempt, page, settings_of

router = APIRouter(include_in_schema=False)
BASE = "/ui/repositories/{name:path}"


def scopes(name: str) -> list[str]:
    """Pull to see, delete to offer the delete buttons."""
    return [f"repository:{name}:pull,delete"]


def _names(name: str) -> dict[str, Any]:
    feed, _, image = name.partition("/")
    return {"name": name, "feed": feed, "image": image}


def _kind(tag: dict[str, Any]) -> str:
    media_type = tag["media_type"]
    if "index" in media_type or "manifest.list" in media_type:
        return "multi-platform index"
    if tag.get("artifact_type") and "image.config" not in tag["artifact_type"]:
        return f"artifact ({tag['artifact_type']})"
    return "image (Docker)" if "docker" in media_type else "image (OCI)"


@router.get(BASE + "/-/history")
@page
async def history(request: Request, name: str) -> Response:
    """What each tag pointed at over time (``?tag=`` one tag; ``?before=`` older entries)."""
    ui = await Ui.open(request, scopes(name))
    tag = request.query_params.get("tag") or None
    params = {"n": str(settings_of(request).ui.page_size)}
    params.update({k: v for k in ("tag", "before") if (v := request.query_params.get(k))})
    response = await ui.api("GET", f"/api/repositories/{name}/history", params=params)
    entries = [_entry(e) for e in response.json()]
    older = entries[-1]["version"] if entries and "next" in response.links else None
    return ui.render("history.html", tab="history", tag=tag, entries=entries, older=older, **_names(name))


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    if e["type"] == "tag.updated":
        change = "moved" if e["previous_digest"] else "created"
        return {**e, "change": change, "from": e["previous_digest"], "to": e["digest"]}
    change = "deleted" if e["type"] == "tag.deleted" else "manifest deleted"
    return {**e, "change": change, "from": e["digest"], "to": None}


@router.get(BASE + "/-/manifests/{digest}")
@page
async def manifest(request: Request, name: str, digest: str) -> Response:
    """A manifest: layers or platforms, the image config, annotations, referrers, its tags."""
    ui = await Ui.open(request, scopes(name))
    response = await ui.api("GET", f"/v2/{name}/manifests/{digest}", headers={"Accept": ACCEPT})
    m = parse_manifest(response.content, response.headers.get("content-type", ""))
    config = None
    if m.image_config is not None:
        blob = await ui.api("GET", f"/v2/{name}/blobs/{m.image_config.digest}")
        config = parse_config(blob.content)
    tags = await ui.get(f"/api/repositories/{name}/tags", params={"digest": digest, "n": "1000"})
    referrers = (await ui.get(f"/v2/{name}/referrers/{digest}")).get("manifests", [])
    refs = [
        {"digest": r.get("digest"), "artifact_type": r.get("artifactType"), "size": r.get("size")}
        for r in referrers
        if isinstance(r, dict)
    ]
    tag = request.query_params.get("tag")
    return ui.render(
        "manifest.html",
        tab="manifest",
        digest=digest,
        m=m,
        config=config,
        tags=[t["tag"] for t in tags],
        tag=tag if tag in {t["tag"] for t in tags} else None,
        referrers=refs,
        can_delete=ui.token.may(name, "delete"),
        **_names(name),
    )


@router.get(BASE + "/-/tags/{tag}/delete")
@page
async def confirm_tag_delete(request: Request, name: str, tag: str) -> Response:
    """Ask before deleting a tag."""
    ui = await Ui.open(request, scopes(name))
    return ui.render(
        "confirm.html",
        title=f"Delete tag {tag}?",
        text=f"The tag {tag} of {name} goes; the manifest it points at and its other tags stay."
        " The tag history keeps a record.",
        action=f"/ui/repositories/{name}/-/tags/{tag}/delete",
        button=f"Delete tag {tag}",
        back=f"/ui/repositories/{name}",
    )


@router.post(BASE + "/-/tags/{tag}/delete")
@action
async def delete_tag(request: Request, name: str, tag: str) -> Response:
    """Delete a tag (registry API; needs Delete on the feed)."""
    ui = await Ui.open(request, scopes(name))
    call = ui.api("DELETE", f"/v2/{name}/manifests/{tag}")
    return await attempt(ui, f"/ui/repositories/{name}", call, f"Tag {tag} deleted.")


@router.get(BASE + "/-/manifests/{digest}/delete")
@page
async def confirm_manifest_delete(request: Request, name: str, digest: str) -> Response:
    """Ask before deleting a manifest (and its tags)."""
    ui = await Ui.open(request, scopes(name))
    tags = await ui.get(f"/api/repositories/{name}/tags", params={"digest": digest, "n": "1000"})
    also = f" and its tags {', '.join(t['tag'] for t in tags)}" if tags else ""
    return ui.render(
        "confirm.html",
        title="Delete this manifest?",
        text=f"The manifest {digest} of {name}{also} will be deleted. Clients can no longer pull it.",
        action=f"/ui/repositories/{name}/-/manifests/{digest}/delete",
        button="Delete manifest",
        back=f"/ui/repositories/{name}/-/manifests/{digest}",
    )


@router.post(BASE + "/-/manifests/{digest}/delete")
@action
async def delete_manifest(request: Request, name: str, digest: str) -> Response:
    """Delete a manifest by digest (registry API; needs Delete on the feed)."""
    ui = await Ui.open(request, scopes(name))
    call = ui.api("DELETE", f"/v2/{name}/manifests/{digest}")
    back = f"/ui/repositories/{name}/-/manifests/{digest}"
    return await attempt(ui, back, call, "Manifest deleted.", then=f"/ui/repositories/{name}")


@router.get(BASE)
@page
async def tags(request: Request, name: str) -> Response:
    """A repository's tags with digest, type, size, platforms, pushed when and by whom."""
    ui = await Ui.open(request, scopes(name))
    params = page_params(request, settings_of(request).ui.page_size)
    try:
        response = await ui.api("GET", f"/api/repositories/{name}/tags", params=params)
    except ApiError as exc:
        if exc.status == 400:  # not a repository name: nothing to show
            exc.status = 404
        raise
    items = [{**t, "kind": _kind(t)} for t in response.json()]
    pages = Pages.of(response, request.query_params.get("q", ""))
    return ui.render(
        "tags.html",
        tab="tags",
        tags=items,
        pages=pages,
        can_delete=ui.token.may(name, "delete"),
        **_names(name),
    )
