"""Connectors: a feed's links to upstream registries it caches (docs/ARCHITECTURE.md, "Connectors").

Shared by the api service (manifests) and the blob service (blobs), which never import each
other: the connector model and its published view (``model``), encryption of upstream
passwords (``secrets``), the upstream registry client with its auth flows (``upstream``), the
cross-process single-flight of fetches (``singleflight``) and the metrics (``metrics``).
"""
