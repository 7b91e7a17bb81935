"""ProGet-style privilege evaluation: pure functions, no I/O (docs/DESIGN.md §4, docs/SECURITY.md).

A rule is ``(principal, feed or None = all feeds, privilege, grant|deny)``. To decide whether a
set of principals holds privilege ``p`` on feed ``f``:

1. Privileges imply others (``IMPLIES``): Manage Feed ⊇ Overwrite ⊇ Add ⊇ View; Delete ⊇ View;
   Admin ⊇ everything. A grant of ``q`` covers ``p`` when ``q`` implies ``p``; a restriction
   (deny) of ``q`` covers ``p`` when ``p`` implies ``q`` (denying View takes away everything).
2. Of the covering rules, only the most specific count: by principal (user or API key >
   group > Authenticated/Anonymous > Everyone), then by scope (one feed > all feeds).
3. Among those, a restriction beats a grant. No covering rule means no access.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PRIVILEGES = ("view", "add", "overwrite", "delete", "manage", "admin")
IMPLIES: dict[str, frozenset[str]] = {
    "view": frozenset({"view"}),
    "add": frozenset({"add", "view"}),
    "overwrite": frozenset({"overwrite", "add", "view"}),
    "delete": frozenset({"delete", "view"}),
    "manage": frozenset({"manage", "overwrite", "add", "delete", "view"}),
    "admin": frozenset(PRIVILEGES),
}
PRINCIPAL_RANK = {"user": 3, "key": 3, "group": 2, "authenticated": 1, "anonymous": 1, "everyone": 0}


@dataclass(frozen=True)
class Rule:
    """One grant or restriction. ``principal`` is ``""`` for pseudo-principals."""

    principal_kind: str
    principal: str
    feed: str | None
    privilege: str
    effect: str = "grant"


Principal = tuple[str, str]  # (kind, name); ("everyone", "") etc.


def covers(rule: Rule, privilege: str) -> bool:
    """Whether ``rule`` speaks about ``privilege`` (see the module docstring, step 1)."""
    if rule.effect == "grant":
        return privilege in IMPLIES.get(rule.privilege, frozenset())
    return rule.privilege in IMPLIES.get(privilege, frozenset())


def allowed(rules: Iterable[Rule], principals: Iterable[Principal], feed: str | None, privilege: str) -> bool:
    """Whether ``principals`` hold ``privilege`` on ``feed`` (``None``: on every feed).

    ``privilege`` is one of ``PRIVILEGES``; unknown names are never allowed.
    """
    if privilege not in IMPLIES:
        return False
    who = set(principals)
    best: tuple[int, int] | None = None
    effects: set[str] = set()
    for rule in rules:
        if (rule.principal_kind, rule.principal) not in who or not covers(rule, privilege):
            continue
        if rule.feed is not None and rule.feed != feed:
            continue
        rank = (PRINCIPAL_RANK.get(rule.principal_kind, 0), 0 if rule.feed is None else 1)
        if best is None or rank > best:
            best, effects = rank, {rule.effect}
        elif rank == best:
            effects.add(rule.effect)
    return "grant" in effects and "deny" not in effects


def privileges_on(rules: list[Rule], principals: list[Principal], feed: str) -> frozenset[str]:
    """Every privilege ``principals`` hold on ``feed``."""
    return frozenset(p for p in PRIVILEGES if allowed(rules, principals, feed, p))
