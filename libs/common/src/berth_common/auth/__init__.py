"""The verifier side of authentication: who is calling, and may they do this (docs/DESIGN.md §4).

``require(action)`` is the single seam every route uses; tokens are verified locally against
the auth service's published public keys (``tokens.py``); scope grammar in ``scopes.py``.
"""

from berth_common.auth.seam import Caller, authorize, authorize_view, require

__all__ = ["Caller", "authorize", "authorize_view", "require"]
