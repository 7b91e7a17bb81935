"""Privilege evaluation (``berth_auth.domain.policy``): pure functions, no database.

docs/SECURITY.md, "Privileges": implications, most specific rule first (principal, then
scope), a restriction beats a grant at the same specificity, no rule means no access.
"""

from __future__ import annotations

import pytest

from berth_auth.domain.policy import PRIVILEGES, Principal, Rule, allowed, covers, privileges_on

ALICE: Principal = ("user", "alice")
DEVS: Principal = ("group", "devs")
EVERYONE: Principal = ("everyone", "")
AUTHENTICATED: Principal = ("authenticated", "")
ALICE_LOGGED_IN = [ALICE, DEVS, AUTHENTICATED, EVERYONE]


def grant(kind: str, name: str, privilege: str, feed: str | None = "f") -> Rule:
    return Rule(kind, name, feed, privilege, "grant")


def deny(kind: str, name: str, privilege: str, feed: str | None = "f") -> Rule:
    return Rule(kind, name, feed, privilege, "deny")


def test_no_rule_means_no_access() -> None:
    assert privileges_on([], ALICE_LOGGED_IN, "f") == frozenset()


@pytest.mark.parametrize(
    ("granted", "held"),
    [
        ("view", {"view"}),
        ("add", {"add", "view"}),
        ("overwrite", {"overwrite", "add", "view"}),
        ("delete", {"delete", "view"}),
        ("manage", {"manage", "overwrite", "add", "delete", "view"}),
        ("admin", set(PRIVILEGES)),
    ],
)
def test_a_grant_implies_the_lesser_privileges(granted: str, held: set[str]) -> None:
    assert privileges_on([grant("user", "alice", granted)], ALICE_LOGGED_IN, "f") == held


def test_denying_view_takes_away_everything_that_implies_it() -> None:
    rules = [grant("user", "alice", "manage"), deny("user", "alice", "view")]
    assert privileges_on(rules, ALICE_LOGGED_IN, "f") == frozenset()


def test_denying_overwrite_keeps_add_and_view() -> None:
    rules = [grant("user", "alice", "manage"), deny("user", "alice", "overwrite")]
    assert privileges_on(rules, ALICE_LOGGED_IN, "f") == {"add", "view", "delete"}


def test_a_restriction_beats_a_grant_of_the_same_specificity() -> None:
    rules = [grant("group", "devs", "add"), deny("group", "devs", "add")]
    assert not allowed(rules, ALICE_LOGGED_IN, "f", "add")
    assert allowed(rules, ALICE_LOGGED_IN, "f", "view")


def test_the_more_specific_principal_wins() -> None:
    # a user's grant beats a group's restriction; a group's restriction beats Everyone's grant
    assert allowed([deny("group", "devs", "add"), grant("user", "alice", "add")], ALICE_LOGGED_IN, "f", "add")
    assert not allowed(
        [grant("everyone", "", "add"), deny("group", "devs", "add")], ALICE_LOGGED_IN, "f", "add"
    )


def test_one_feed_is_more_specific_than_all_feeds() -> None:
    rules = [deny("user", "alice", "view", feed=None), grant("user", "alice", "view", feed="f")]
    assert allowed(rules, ALICE_LOGGED_IN, "f", "view")
    assert not allowed(rules, ALICE_LOGGED_IN, "g", "view")


def test_a_rule_for_another_feed_or_principal_does_not_count() -> None:
    assert not allowed([grant("user", "alice", "view", feed="g")], ALICE_LOGGED_IN, "f", "view")
    assert not allowed([grant("user", "bob", "view")], ALICE_LOGGED_IN, "f", "view")


def test_a_feed_rule_does_not_grant_on_every_feed() -> None:
    assert not allowed([grant("user", "alice", "admin", feed="f")], ALICE_LOGGED_IN, None, "admin")
    assert allowed([grant("user", "alice", "admin", feed=None)], ALICE_LOGGED_IN, None, "admin")


def test_anonymous_is_not_authenticated() -> None:
    rules = [grant("authenticated", "", "view")]
    assert not allowed(rules, [("anonymous", ""), EVERYONE], "f", "view")
    assert allowed(rules, ALICE_LOGGED_IN, "f", "view")


def test_unknown_privilege_is_never_allowed() -> None:
    assert not allowed([grant("user", "alice", "admin")], ALICE_LOGGED_IN, "f", "fly")


def test_covers() -> None:
    assert covers(grant("user", "a", "manage"), "add")
    assert not covers(grant("user", "a", "add"), "manage")
    assert covers(deny("user", "a", "add"), "manage")  # denying add denies what needs add
    assert not covers(deny("user", "a", "manage"), "add")
