"""API keys of the gateway: hashed in the config, each with its cascades, budget and rate limit.

.. code-block:: yaml

    access:
      key_salt_env: ECOCASCADE_KEY_SALT     # optional salt shared by every key (or key_salt: ...)
      keys:
        - id: team-a                          # shown on the dashboard; never the key itself
          sha256: 9f86d081884c7d65...         # sha256(salt + key), hex; or key_env: TEAM_A_KEY
          cascades: [support]                 # "*" (the default): every cascade
          budget: {usd: 5.00, period: day}    # day or month, UTC
          rate_limit: {requests: 60, per_s: 60}
          namespace: team-a                   # cache + solutions namespace (default: the id)

The gateway never stores a key in clear: a client's key is hashed and looked up by its hash.
``key_env`` names an environment variable holding the key itself (handy in containers); it is
hashed when the config is read. Two keys share cached answers and solutions only when they name
the same ``namespace``. Make a key with ``python -m ecocascade.gateway.apikeys``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from ecocascade.exceptions import ConfigError

__all__ = [
    "AccessSpec",
    "BudgetSpec",
    "KeyPolicy",
    "KeyRing",
    "KeySpec",
    "RateLimitSpec",
    "hash_key",
    "new_key",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_HEX64 = r"^[0-9a-f]{64}$"


def hash_key(key: str, salt: str = "") -> str:
    """The hex sha256 of ``salt + key``: what the config holds instead of the key."""
    return hashlib.sha256((salt + key).encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (``eco-`` + 43 URL-safe characters, 256 bits)."""
    return "eco-" + secrets.token_urlsafe(32)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BudgetSpec(_Strict):
    usd: PositiveFloat
    period: Literal["day", "month"] = "day"


class RateLimitSpec(_Strict):
    requests: PositiveInt
    per_s: PositiveFloat = 60.0


class KeySpec(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    sha256: Annotated[str, Field(pattern=_HEX64)] | None = None
    key_env: str | None = None
    salt: str | None = None
    cascades: tuple[str, ...] = ("*",)
    budget: BudgetSpec | None = None
    rate_limit: RateLimitSpec | None = None
    namespace: Annotated[str, Field(pattern=_ID)] | None = None
    admin: bool = False

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of sha256 (the key's hash) or key_env")
        return self


class AccessSpec(_Strict):
    keys: tuple[KeySpec, ...] = ()
    key_salt: str | None = None
    key_salt_env: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        for spec in self.keys:
            if spec.id in seen:
                raise ValueError(f"two keys have the id {spec.id!r}")
            seen.add(spec.id)
        if self.key_salt is not None and self.key_salt_env is not None:
            raise ValueError("give key_salt or key_salt_env, not both")
        return self


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What one API key may do. ``namespace`` prefixes its cache and solutions namespaces."""

    id: str
    cascades: frozenset[str]
    namespace: str
    budget_usd: float | None = None
    period: Literal["day", "month"] = "day"
    rate_requests: int | None = None
    rate_window_s: float = 60.0
    admin: bool = False

    def allows(self, cascade: str) -> bool:
        return "*" in self.cascades or cascade in self.cascades

    def scoped(self, namespace: str) -> str:
        """``namespace`` (a cascade's cache or solutions namespace) as seen by this key."""
        return f"{self.namespace}/{namespace}"


class KeyRing:
    """The configured keys, looked up by the hash of what a client sends.

    An empty ring means an open gateway: :meth:`lookup` is never asked and every request is
    anonymous (no budget, no rate limit, no namespace prefix).
    """

    def __init__(self, entries: Iterable[tuple[str, str, KeyPolicy]] = ()) -> None:
        self._by_hash: dict[tuple[str, str], KeyPolicy] = {}
        self._salts: list[str] = []
        self.policies: dict[str, KeyPolicy] = {}
        for digest, salt, policy in entries:
            if (salt, digest) in self._by_hash:
                raise ConfigError(
                    f"keys {self._by_hash[(salt, digest)].id!r} and {policy.id!r} are the same key",
                    where="access.keys",
                )
            self._by_hash[(salt, digest)] = policy
            self.policies[policy.id] = policy
            if salt not in self._salts:
                self._salts.append(salt)

    @classmethod
    def from_spec(
        cls,
        spec: AccessSpec | Mapping[str, object] | None,
        *,
        cascades: Collection[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> KeyRing:
        """The ring of ``spec``; ``cascades`` (the configured names) checks every allow-list."""
        if spec is None:
            return cls()
        if not isinstance(spec, AccessSpec):
            from ecocascade.exceptions import format_validation_error

            try:
                spec = AccessSpec.model_validate(spec)
            except Exception as error:  # pydantic.ValidationError
                from pydantic import ValidationError

                if isinstance(error, ValidationError):
                    raise ConfigError(format_validation_error(error), where="access") from None
                raise
        env = os.environ if environ is None else environ
        shared_salt = spec.key_salt or ""
        if spec.key_salt_env is not None:
            if spec.key_salt_env not in env:
                raise ConfigError(
                    f"environment variable {spec.key_salt_env} is not set", where="access"
                )
            shared_salt = env[spec.key_salt_env]
        entries = []
        for index, key in enumerate(spec.keys):
            where = f"access.keys.{index}"
            salt = key.salt if key.salt is not None else shared_salt
            if key.key_env is not None:
                plain = env.get(key.key_env)
                if not plain:
                    raise ConfigError(f"environment variable {key.key_env} is not set", where=where)
                digest = hash_key(plain, salt)
            else:
                assert key.sha256 is not None
                digest = key.sha256
            unknown = sorted(set(key.cascades) - {"*"} - set(cascades or ()))
            if cascades is not None and unknown:
                raise ConfigError(
                    f"no such cascade: {', '.join(unknown)} (configured: "
                    f"{', '.join(sorted(cascades)) or 'none'})",
                    where=f"{where}.cascades",
                )
            policy = KeyPolicy(
                id=key.id,
                cascades=frozenset(key.cascades),
                namespace=key.namespace or key.id,
                budget_usd=key.budget.usd if key.budget else None,
                period=key.budget.period if key.budget else "day",
                rate_requests=key.rate_limit.requests if key.rate_limit else None,
                rate_window_s=key.rate_limit.per_s if key.rate_limit else 60.0,
                admin=key.admin,
            )
            entries.append((digest, salt, policy))
        return cls(entries)

    @property
    def open(self) -> bool:
        """No keys configured: anyone may call."""
        return not self._by_hash

    def lookup(self, key: str) -> KeyPolicy | None:
        """The policy of ``key``, or ``None``: one dict lookup per configured salt. The lookup is
        on the sha256 of the key, so its timing tells a caller nothing about a stored key."""
        for salt in self._salts:
            policy = self._by_hash.get((salt, hash_key(key, salt)))
            if policy is not None:
                return policy
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header (``None`` when absent or malformed)."""
    if not authorization:
        return None
    match = re.fullmatch(r"\s*[Bb]earer\s+(\S+)\s*", authorization)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    """``python -m ecocascade.gateway.apikeys [--salt SALT] [KEY]``: print a key and its hash."""
    usage = "usage: python -m ecocascade.gateway.apikeys [--salt SALT] [KEY]"
    args = list(sys.argv[1:] if argv is None else argv)
    salt = ""
    if args[:1] == ["--salt"]:
        if len(args) < 2:
            print(usage, file=sys.stderr)
            return 2
        salt, args = args[1], args[2:]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(usage, file=sys.stderr)
        return 2
    key = args[0] if args else new_key()
    if not args:
        print(f"key:    {key}   (give this to the client; it is not stored)")
    print(f"sha256: {hash_key(key, salt)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
