"""``/token`` logins (issue 9 §4): user names cannot be told apart by timing, and failures are
limited per client address as well as per (user name, address), in PostgreSQL.

Timing itself is not asserted (``bench/login_timing.py`` measures it by hand); instead the tests
count the argon2id verifications through the real hasher: every failed password login runs
exactly one, whether the name exists, is disabled or is unknown. That the limits are shared by
processes is ``tests/e2e/test_login_limits.py``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import argon2
import pytest

from berth_auth.domain import credentials, identities
from berth_common.settings import AuthSettings
from tests.integration.auth_world import api
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-limits-1"


class CountingHasher:
    """The real ``PasswordHasher``, counting ``verify`` calls (the hashes they were given)."""

    def __init__(self, real: argon2.PasswordHasher) -> None:
        self.real = real
        self.verified: list[str] = []

    def verify(self, hash: str, password: str) -> bool:
        self.verified.append(hash)
        return self.real.verify(hash, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
async def berth() -> AsyncIterator[BerthApp]:
    """Users ``alice`` (enabled) and ``dora`` (disabled); limits 3 per user, 5 per address."""
    limits = AuthSettings(failures_per_minute=3, address_failures_per_minute=5)
    async with berth_app(with_bus=False, auth=limits) as running:
        await api(running, "POST", "/api/users", {"name": "alice", "password": PW})
        await api(running, "POST", "/api/users", {"name": "dora", "password": PW})
        await api(running, "POST", "/api/users/dora/disable")
        yield running


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher(identities.HASHER)
    monkeypatch.setattr(identities, "HASHER", counting)
    return counting


async def login(berth: BerthApp, user: str, password: str, address: str = "198.51.100.1") -> Any:
    """``GET /token`` with Basic credentials, as client ``address`` behind the (trusted) loopback."""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "X-Forwarded-For": address}
    return await berth.client.get("/token", params={"service": "berth"}, headers=headers, auth=None)


@pytest.mark.parametrize(
    "user",
    ["alice", "nobody", "dora", "no\0body"],
    ids=["existing-wrong-password", "unknown", "disabled", "nul-in-name"],
)
async def test_every_failed_password_login_runs_one_argon2_check(
    berth: BerthApp, hasher: CountingHasher, user: str
) -> None:
    r = await login(berth, user, "wrong" if user == "alice" else PW)
    assert r.status_code == 401, r.text
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert len(hasher.verified) == 1
    real = await berth.app.state.resources.pool.fetchval(
        "SELECT password_hash FROM auth.users WHERE name = 'alice'"
    )
    # the dummy is checked with the same cost as a real hash
    assert argon2.extract_parameters(hasher.verified[0]) == argon2.extract_parameters(real)
    assert (hasher.verified[0] == real) == (user == "alice")


async def test_right_password_still_logs_in(berth: BerthApp, hasher: CountingHasher) -> None:
    assert (await login(berth, "alice", PW)).status_code == 200
    assert hasher.verified and credentials.dummy_hash() not in hasher.verified


async def test_address_limit_spans_user_names_and_only_that_address(berth: BerthApp) -> None:
    statuses = [(await login(berth, f"spray{i}", "x")).status_code for i in range(5)]
    assert statuses == [401] * 5
    limited = await login(berth, "alice", PW)  # right password, but the address is limited
    assert limited.status_code == 429, limited.text
    assert limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await login(berth, "alice", PW, address="198.51.100.2")).status_code == 200
    rows = await berth.app.state.resources.pool.fetchval(
        "SELECT count(*) FROM auth.login_failures WHERE bucket LIKE 'address:198.51.100.1'"
    )
    assert rows == 1  # the state lives in PostgreSQL, not in the process


async def test_user_limit_is_per_address(berth: BerthApp) -> None:
    assert [(await login(berth, "alice", "x")).status_code for _ in range(3)] == [401] * 3
    assert (await login(berth, "alice", PW)).status_code == 429
    assert (await login(berth, "bob", "x")).status_code == 401  # the address has failures left
    assert (await login(berth, "alice", PW, address="198.51.100.9")).status_code == 200


async def test_ipv6_clients_count_per_64(berth: BerthApp) -> None:
    for i in range(5):
        assert (await login(berth, f"v6user{i}", "x", address=f"2001:db8:1:2::{i + 1}")).status_code == 401
    assert (await login(berth, "alice", PW, address="2001:db8:1:2:ffff::1")).status_code == 429
    assert (await login(berth, "alice", PW, address="2001:db8:1:3::1")).status_code == 200


async def test_api_key_failures_count_toward_the_address(berth: BerthApp) -> None:
    for _ in range(3):
        assert (await login(berth, "api", "bk_not-a-key")).status_code == 401
    assert (await login(berth, "api", "bk_not-a-key")).status_code == 429
    assert (await login(berth, "carol", "x")).status_code == 401  # address: 4 of 5 used
    assert (await login(berth, "erin", "x")).status_code == 401  # 5 of 5
    assert (await login(berth, "frank", "x")).status_code == 429  # none left
