"""Failed-login limits, shared by every auth process and replica.

docs/SECURITY.md, "Credentials and rate limiting".

Two buckets are charged for every failed login and checked before every login:

* per **client address**: ``auth.address_failures_per_minute`` failures from one address, all
  user names together (a password spray across many names from one place);
* per **user name and address**: ``auth.failures_per_minute`` failures for one name from one
  address (guessing one account). Keyed by the address too, so nobody can lock a user (or the
  shared API-key login ``api``) out from elsewhere.

The client address is the connection's peer, or behind ``trusted_proxies`` the forwarded one
(``berth_common.http.urls.client_host``); IPv6 addresses count per /64 (one host's usual
allocation, which it can otherwise rotate through). State is ``auth.login_failures`` in
PostgreSQL, so the limits hold across processes. Each bucket is a GCRA: its theoretical
arrival time ``tat`` moves one interval ``T = 60 s / limit`` past ``max(tat, now)`` per
failure; a login is refused with ``429 TOOMANYREQUESTS`` and ``Retry-After`` while ``tat``
lies more than ``(limit - 1) * T`` ahead. That is a token bucket of ``limit`` failures refilled
at ``limit`` per minute. Checking and charging are separate statements, so failures already in
flight when the bucket empties still count: the bucket goes into debt, and the long-run rate
stays at the limit whatever the concurrency.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass

import asyncpg

from berth_common.domain_errors import LoginThrottled
from berth_common.settings import AuthSettings

_CHECK = (
    "SELECT bucket, extract(epoch FROM tat - now())::float8 AS ahead"
    " FROM auth.login_failures WHERE bucket = ANY($1::text[])"
)
_CHARGE = (
    "INSERT INTO auth.login_failures AS f (bucket, tat)"
    " SELECT b, now() + make_interval(secs => t) FROM unnest($1::text[], $2::float8[]) AS u(b, t)"
    " ON CONFLICT (bucket) DO UPDATE SET tat = greatest(f.tat, now()) + (excluded.tat - now())"
)
_EXPIRE = (
    "DELETE FROM auth.login_failures WHERE bucket IN"
    " (SELECT bucket FROM auth.login_failures WHERE tat < now() LIMIT 100 FOR UPDATE SKIP LOCKED)"
)


def address_key(address: str) -> str:
    """The address a bucket is keyed by: the IPv4 address, an IPv6 address's /64 network (an
    IPv4-mapped one as IPv4), or the text as given when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address[:200]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class _Bucket:
    key: str
    limit: int  # failures per minute (and the burst)
    what: str  # for the 429 message

    @property
    def interval(self) -> float:
        """Seconds one failure adds to the bucket's ``tat``."""
        return 60.0 / self.limit


class LoginLimits:
    """The two failure buckets of a login attempt (see module docstring).

    ``LoginLimits(pool, settings.auth)``; call :meth:`check` before verifying credentials and
    :meth:`failed` after a failure.
    """

    def __init__(self, pool: asyncpg.Pool, settings: AuthSettings) -> None:
        self.pool = pool
        self.per_user = settings.failures_per_minute
        self.per_address = settings.address_failures_per_minute

    def _buckets(self, user: str, address: str) -> list[_Bucket]:
        where = address_key(address)
        name = hashlib.sha256(user.encode(errors="surrogatepass")).hexdigest()[:32]
        return [
            _Bucket(f"address:{where}", self.per_address, f"from {where}"),
            _Bucket(f"user:{where}:{name}", self.per_user, f"for {user[:64]!r} from {where}"),
        ]

    async def check(self, user: str, address: str) -> None:
        """Refuse the attempt when either bucket of (``user``, ``address``) is empty.

        Raises:
            LoginThrottled: with the whole seconds until a failure is allowed (429 with
                ``Retry-After`` on the wire).
        """
        buckets = {b.key: b for b in self._buckets(user, address)}
        rows = await self.pool.fetch(_CHECK, list(buckets))
        for row in rows:
            bucket = buckets[row["bucket"]]
            wait = row["ahead"] - (bucket.limit - 1) * bucket.interval
            if wait > 0:
                raise LoginThrottled(bucket.what, math.ceil(wait))

    async def failed(self, user: str, address: str) -> None:
        """Charge one failure to both buckets of (``user``, ``address``); forget expired buckets.

        Rows are locked address bucket first, then the user bucket (whose key holds the same
        address), so concurrent charges cannot deadlock; the clean-up skips locked rows.
        """
        buckets = self._buckets(user, address)
        async with self.pool.acquire() as conn:
            await conn.execute(_CHARGE, [b.key for b in buckets], [b.interval for b in buckets])
            await conn.execute(_EXPIRE)
