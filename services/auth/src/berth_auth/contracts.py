"""What the auth service publishes to the other services (``berth_common.contracts``).

A read-only view over the auth schema, defined in ``berth_auth/migrations``; no other part of
the schema may be read, and nothing of it written, by another service
(``tests/contract/test_service_contracts.py``).
"""

from __future__ import annotations

from berth_common.contracts import Contract, Published

CONTRACT = Contract(
    service="auth",
    schema="auth",
    published=(
        Published(
            name="auth.v_signing_keys",
            kind="view",
            columns=("kid", "public_pem", "created_at", "retire_at"),
            readers=("common",),
            purpose="The public keys that verify access tokens (ES256), including retired keys"
            " until their retire_at (the overlap). Read by berth_common.auth.tokens in every"
            " service, cached and reloaded on an unknown kid; private keys never leave"
            " auth.signing_keys.",
        ),
    ),
)
"""The auth service's published view."""
