"""``Accept`` header negotiation for manifest GET/HEAD.

Sources: RFC 9110 §12.5.1 (Accept, q-values, media ranges); OCI distribution spec v1.1,
"Pulling manifests" (the client SHOULD send Accept listing the manifest types it supports);
CNCF Distribution 2.8 ``registry/handlers/manifests.go`` (what registries actually do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from berth_common.oci import mediatypes as mt

# Types that Distribution only serves by tag when the client lists them in Accept.
_NEGOTIATED_TYPES = frozenset({mt.OCI_MANIFEST, mt.OCI_INDEX})


def parse_accept(headers: Iterable[str]) -> list[tuple[str, float]]:
    """Parse every ``Accept`` header value into ``[(media range, q), ...]`` in order.

    Each header may hold a comma-separated list; ranges are lowercased without parameters
    (``"application/vnd.oci.image.manifest.v1+json"``, ``"application/*"``, ``"*/*"``); a bare
    ``*`` (sent by some HTTP libraries) means ``*/*``. ``q`` defaults to 1.0 and is clamped to
    ``[0, 1]``; an element with an unparseable or non-finite ``q``, or that is not ``type/subtype``,
    is skipped.
    """
    if isinstance(headers, str):  # one header value passed bare: do not iterate its characters
        headers = [headers]
    parsed: list[tuple[str, float]] = []
    for header in headers:
        for element in header.split(","):
            item = _parse_element(element)
            if item is not None:
                parsed.append(item)
    return parsed


def _parse_element(element: str) -> tuple[str, float] | None:
    """One ``type/subtype;param=v;q=0.5`` element, or ``None`` if malformed."""
    media_range, *params = (part.strip() for part in element.split(";"))
    media_range = media_range.lower()
    if media_range == "*":
        media_range = "*/*"
    kind, slash, subtype = media_range.partition("/")
    if not slash or not kind or not subtype or "/" in subtype or (kind == "*" and subtype != "*"):
        return None
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip().strip('"'))
            except ValueError:
                return None
            if not math.isfinite(q):
                return None
            q = min(max(q, 0.0), 1.0)
            break  # parameters after q are accept-extensions, not media type parameters
    return media_range, q


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """q of the most specific range matching ``media_type`` (exact > ``type/*`` > ``*/*``); 0 if none."""
    kind = media_type.partition("/")[0]
    best_rank, best_q = -1, 0.0
    for media_range, q in ranges:
        if media_range == media_type:
            rank = 2
        elif media_range == f"{kind}/*":
            rank = 1
        elif media_range == "*/*":
            rank = 0
        else:
            continue
        if rank > best_rank or (rank == best_rank and q > best_q):
            best_rank, best_q = rank, q
    return best_q


def accepts(headers: Iterable[str], media_type: str) -> bool:
    """True when a client with these ``Accept`` headers accepts ``media_type``.

    True when there is no Accept header, or none of its elements parses (then it says
    nothing); otherwise True when the most specific range that matches ``media_type``
    (exact, ``type/*``, ``*/*``) has ``q > 0``.
    """
    ranges = parse_accept(headers)
    if not ranges:
        return True
    return _quality(ranges, mt.base_media_type(media_type)) > 0


def acceptable_for(headers: Iterable[str], media_type: str, by_digest: bool) -> bool:
    """May a manifest of ``media_type`` be served to this client? False -> ``404 MANIFEST_UNKNOWN``.

    Registry policy, modelled on Distribution 2.8's manifest GET/HEAD:

    - By tag, OCI image manifest or OCI index: served only if :func:`accepts` says so. A client
      that sends Accept but does not accept OCI types gets ``MANIFEST_UNKNOWN`` (Distribution's
      "OCI manifest found, but accept header does not support OCI manifests"), so that old
      Docker clients fail cleanly instead of misreading a document.
    - By digest: always served. The client named exact content, which it can only have learnt
      from a manifest or index it already understood.
    - Any other type (Docker schema 2 manifest or manifest list): always served as stored.
      Distribution 2.8 would rewrite these into schema 1 for clients that do not list them;
      Berth never rewrites manifests (the bytes pushed are the bytes served) and schema 1 only
      clients are long gone.

    Deliberate differences from Distribution 2.8 (checked against Debian's docker-registry
    2.8, which compares Accept values literally and ignores ``q``): wildcards (``*/*``,
    ``application/*``) and ``q`` values are honoured (containerd sends ``*/*`` after its list);
    a request with no Accept header at all (curl) is served; and OCI content fetched by digest
    is served, where 2.8 answers ``MANIFEST_UNKNOWN`` by digest too.
    """
    if by_digest:
        return True
    if mt.base_media_type(media_type) not in _NEGOTIATED_TYPES:
        return True
    return accepts(headers, media_type)
