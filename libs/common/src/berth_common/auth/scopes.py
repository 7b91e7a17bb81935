"""Docker token scopes: parsing and the ``access`` claim (Docker "Token Authentication
Specification" and "Token Scope Documentation").

Grammar::

    scope          := resourcescope [ ' ' resourcescope ]*
    resourcescope  := resourcetype ":" resourcename ":" action [ ',' action ]*
    resourcetype   := resourcetypevalue [ '(' resourcetypevalue ')' ]   e.g. repository(plugin)
    resourcename   := [ hostname '/' ] component [ '/' component ]*    may hold "host:port"
    action         := /[a-z]*/ | '*'

The name may contain ``:`` (a ``host:port`` prefix), so the type is everything before the first
colon and the actions everything after the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from berth_common.errors import RegistryError

TYPE = re.compile(r"^[a-z0-9]+(?:\([a-z0-9]+\))?$")
ACTION = re.compile(r"^(?:[a-z]+|\*)$")
NAME = re.compile(r"^[A-Za-z0-9._:/\-*]{1,512}$")
MAX_SCOPES = 100


class ScopeInvalid(RegistryError):
    """400 SCOPE_INVALID (token endpoint): a ``scope`` parameter breaks the grammar."""

    code, status, default_message = "SCOPE_INVALID", 400, "invalid scope"


@dataclass(frozen=True)
class Scope:
    """One resource scope: ``type`` (without class), its ``resource_class``, ``name``, ``actions``."""

    type: str
    name: str
    actions: tuple[str, ...]
    resource_class: str | None = None

    def __str__(self) -> str:
        kind = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{kind}:{self.name}:{','.join(self.actions)}"


def parse_scope(text: str) -> Scope:
    """Parse one resource scope. Raises ``ScopeInvalid`` with the offending text."""
    kind, sep1, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep1 and sep2 and TYPE.match(kind) and NAME.match(name)):
        raise ScopeInvalid(f"scope {text[:200]!r} is not TYPE:NAME:ACTION[,ACTION]")
    parts = tuple(dict.fromkeys(a for a in actions.split(",") if a))
    if not parts or not all(ACTION.match(a) for a in parts):
        raise ScopeInvalid(f"scope {text[:200]!r} has invalid actions {actions[:100]!r}")
    base, _, cls = kind.partition("(")
    return Scope(base, name, parts, cls.rstrip(")") or None)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Every scope of repeated ``scope`` parameters (each may hold several, space-separated).

    Raises ``ScopeInvalid`` for a malformed one or more than ``MAX_SCOPES``.
    """
    texts = [t for value in values for t in value.split(" ") if t]
    if len(texts) > MAX_SCOPES:
        raise ScopeInvalid(f"at most {MAX_SCOPES} scopes per token request")
    return [parse_scope(t) for t in texts]


def access_entry(scope: Scope, actions: list[str]) -> dict[str, Any]:
    """An entry of the JWT ``access`` claim: ``{"type", "name", "actions"}``."""
    return {"type": scope.type, "name": scope.name, "actions": actions}
