"""Which service answers a request path: the one routing table of Berth (docs/DESIGN.md §1).

The same routing exists in three forms, all derived from or checked against this module:

- the all-in-one process (``berth.allinone``) mounts every service's routers in one app, and
  the routers' own paths agree with :func:`service_for_path` (``tests/unit/test_deploy_files.py``);
- ``berth serve proxy`` (``berth.proxy``) calls :func:`service_for_path` for every request;
- ``deploy/compose.yaml``'s nginx and ``deploy/k8s/*/ingress.yaml`` spell the same rules as
  location blocks / Ingress paths; the deploy-files test checks them against this module.

Rules, first match wins:

1. ``/token`` (Docker token spec, OAuth2 grants), ``/auth/…`` (JWKS) and the identity admin
   API ``/api/users|groups|privileges|keys|signing-keys|refresh-tokens…`` → auth (:data:`AUTH_PATH_REGEX`).
2. ``/v2/<name>/blobs/<digest>`` and ``/v2/<name>/blobs/uploads[/<session>]`` → blob
   (:data:`BLOB_PATH_REGEX`). A repository may itself contain a ``blobs`` component
   (``/v2/feed/blobs/manifests/v1``): only a single segment after ``/blobs/`` (or
   ``uploads/`` plus one segment) makes a blob path, as in Distribution's router.
3. ``/api/gc/`` → gc (reserved for the gc service's on-demand job API).
4. ``/`` and ``/ui…`` (the web UI's pages, forms and assets) → ui (:data:`UI_PATH_REGEX`).
5. Everything else (``/v2/``, manifests, tags, catalog, referrers, ``/api/feeds``,
   ``/api/repositories``, ``/api/docs``) → api.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Service = Literal["api", "blob", "auth", "gc", "ui"]
SERVICES: Final[tuple[Service, ...]] = ("api", "blob", "auth", "gc", "ui")

AUTH_PATH_REGEX: Final = r"^/(token|auth|api/(users|groups|privileges|keys|signing-keys|refresh-tokens))(/|$)"
BLOB_PATH_REGEX: Final = r"^/v2/.+/blobs/(uploads/)?[^/]*$"
GC_PREFIX: Final = "/api/gc/"
UI_PATH_REGEX: Final = r"^/(ui(/|$)|$)"

_AUTH = re.compile(AUTH_PATH_REGEX)
_BLOB = re.compile(BLOB_PATH_REGEX)
_UI = re.compile(UI_PATH_REGEX)


def service_for_path(path: str) -> Service:
    """The service that answers ``path`` (the URL path only, no query; percent-decoded or not).

    ``service_for_path("/v2/dmc/ubuntu/blobs/uploads/")`` → ``"blob"``;
    ``service_for_path("/v2/dmc/ubuntu/manifests/trusty")`` → ``"api"``;
    ``service_for_path("/token")`` → ``"auth"``; ``service_for_path("/ui/feeds")`` → ``"ui"``.
    Never raises.
    """
    if _AUTH.match(path):
        return "auth"
    if _BLOB.match(path):
        return "blob"
    if path.startswith(GC_PREFIX):
        return "gc"
    if _UI.match(path):
        return "ui"
    return "api"
