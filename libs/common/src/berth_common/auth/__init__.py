"""The verifier side of authentication: who is calling, and may they do this (DESIGN §4).

Until the auth service lands, ``/v2/`` is open: ``authorize`` grants every action to an
anonymous caller. It is the single seam where token verification and scope checks plug in;
routes only declare the action they need.
"""

from berth_common.auth.seam import Caller, authorize, require

__all__ = ["Caller", "authorize", "require"]
