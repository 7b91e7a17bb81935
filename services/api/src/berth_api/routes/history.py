"""Tag history from the event log: what each tag pointed at over time, who moved it, when.

``GET /api/repositories/{name}/history[?tag=T][&n=][&before=V]`` reads the repository's own
stream ``repository:<feed>/<image>`` in ``eventstore.events`` (the source of truth, so nothing
is lost when a tag moves or goes): ``tag.updated`` (``previous_digest`` → ``digest``),
``tag.deleted`` and, for the whole repository, ``manifest.deleted``. Newest first; ``before`` is
the stream version to continue below (``Link: rel="next"`` gives it). Payloads are upcast to the
current schema (``berth_common.events.decode``). Needs View on the feed (``authorize_view``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from berth_api.deps import Pool
from berth_api.domain.manifests import stream_of
from berth_api.routes.paging import DEFAULT_PAGE, MAX_PAGE
from berth_common.auth import authorize_view
from berth_common.errors import NameUnknown, PaginationNumberInvalid
from berth_common.events.catalogue import decode
from berth_common.oci.reference import RepositoryName

router = APIRouter(tags=["browse"])
TAG_TYPES = ["tag.updated", "tag.deleted"]
ALL_TYPES = [*TAG_TYPES, "manifest.deleted"]


class HistoryEntry(BaseModel):
    """One change: ``type`` (``tag.updated`` | ``tag.deleted`` | ``manifest.deleted``), the tag
    (``None`` for a manifest deletion), the digest it points at now (or pointed at when deleted),
    the one before (``tag.updated`` only; ``None`` for a new tag), who and when."""

    version: int
    type: str
    tag: str | None
    digest: str
    previous_digest: str | None
    actor: str | None
    recorded_at: datetime


_SQL = """
    SELECT version, type, schema_version, payload, metadata->>'actor' AS actor, recorded_at
    FROM eventstore.events
    WHERE stream = $1 AND type = ANY($2::text[]) AND ($3::text IS NULL OR payload->>'tag' = $3)
      AND version < $4
    ORDER BY version DESC LIMIT $5
"""


@router.get("/api/repositories/{name:path}/history", response_model=list[HistoryEntry])
async def tag_history(name: str, request: Request, pool: Pool) -> JSONResponse:
    """The repository's tag changes, newest first (see the module docstring).

    Raises ``NameInvalid`` (bad name), ``PaginationNumberInvalid`` (bad ``n``/``before``) and,
    after the View check, ``NameUnknown`` for a repository that never existed.
    """
    repository = str(RepositoryName.parse(name))
    await authorize_view(request, repository=repository)
    params = request.query_params
    n, before = _number(params.get("n"), DEFAULT_PAGE), _number(params.get("before"), 2**31 - 1)
    tag = params.get("tag") or None
    rows = await pool.fetch(
        _SQL, stream_of(repository), TAG_TYPES if tag else ALL_TYPES, tag, before, min(n, MAX_PAGE) + 1
    )
    if not rows and not await pool.fetchval(
        "SELECT true FROM eventstore.events WHERE stream = $1 LIMIT 1", stream_of(repository)
    ):
        raise NameUnknown(f"repository {repository} is not known", detail={"name": repository})
    entries = [_entry(r) for r in rows[: min(n, MAX_PAGE)]]
    headers = {}
    if len(rows) > min(n, MAX_PAGE):
        query = {"n": str(n), **({"tag": tag} if tag else {}), "before": str(entries[-1].version)}
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return JSONResponse([e.model_dump(mode="json") for e in entries], headers=headers)


def _number(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise PaginationNumberInvalid(f"expected a positive integer, not {raw[:20]!r}")
    return int(raw)


def _entry(row: Any) -> HistoryEntry:
    event = decode(row["type"], row["schema_version"], row["payload"])
    fields = event.model_dump()
    return HistoryEntry(
        version=row["version"],
        type=row["type"],
        tag=fields.get("tag"),
        digest=fields["digest"],
        previous_digest=fields.get("previous_digest"),
        actor=row["actor"],
        recorded_at=row["recorded_at"],
    )
