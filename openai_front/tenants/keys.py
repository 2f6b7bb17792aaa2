"""Tenant keys: what a key may do (its record), how a key string is made and hashed, and where records live.

A key string is shown once, when it is made; stores keep only its sha256 (hex), which is also how a
request's key is looked up. The admin API's bodies are the schemas here: `KeySpec` for POST (a name
and the fields), `KeyFields` for PATCH (the same fields, each one changed only when sent).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from model_router.vocabulary import UseCase

KEY_PREFIX = "tmr-"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # not "." nor "..": a name is a URL path part
Period = Literal["day", "month"]
Ceiling = Literal["quality", "balanced", "cost"]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]


def as_utc(when: datetime) -> datetime:
    """A time without a zone is UTC's (every time here is)."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


UtcTime = Annotated[datetime, AfterValidator(as_utc)]


class KeyFields(BaseModel):
    """What a key may do; unset limits are no limits. The PATCH body (only the fields sent change)."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(None, min_length=1)  # None: every model; auto routes only among these
    use_cases: list[UseCase] | None = Field(None, min_length=1)
    prefer: Ceiling | None = None  # the ceiling: a request's `prefer` above it is lowered to it
    rpm: int | None = Field(None, ge=1)  # requests in any 60 s
    tpm: int | None = Field(None, ge=1)  # tokens charged in the last 60 s
    budget_tokens: int | None = Field(None, ge=1)  # tokens charged in the current period (UTC)
    period: Period = "month"
    expires_at: UtcTime | None = None
    # Whose cached answers it shares (None: its own name): keys the operator gives one namespace share them.
    cache_namespace: Name | None = None

    @field_validator("models", "use_cases")
    @classmethod
    def _once_each(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else list(dict.fromkeys(values))



class KeySpec(KeyFields):
    """A new key: its name and what it may do (the POST body)."""

    name: Name


class TenantKey(KeySpec):
    """A key's record as stored (never its key string)."""

    created_at: datetime
    revoked: bool = False

    @property
    def limited(self) -> bool:
        """Whether any counter applies to the key."""
        return bool(self.rpm or self.tpm or self.budget_tokens)

    def refusal(self, now: float) -> str | None:
        """Why this key cannot be used at `now` (epoch seconds), or None when it can."""
        if self.revoked:
            return f"the API key {self.name!r} was revoked"
        if self.expires_at is not None and now >= self.expires_at.timestamp():
            return f"the API key {self.name!r} expired at {self.expires_at.isoformat()}"
        return None

    def changed(self, changes: KeyFields) -> TenantKey:
        """This record with the fields `changes` sets (those it was sent with), validated again."""
        fields = changes.model_dump(exclude_unset=True)
        fields = {name: value for name, value in fields.items() if name in KeyFields.model_fields}  # never a rename
        return TenantKey.model_validate({**self.model_dump(), **fields})


def new_key() -> str:
    """A fresh key string (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """How a key is stored and looked up: its sha256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def record_of(spec: KeySpec, now: datetime | None = None) -> TenantKey:
    """The record a new key starts with."""
    return TenantKey.model_validate({**spec.model_dump(), "created_at": now or datetime.now(timezone.utc)})


class KeyExists(ValueError):
    """A key of that name exists (revoked ones too: a name is never reused)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"name: a key named {name!r} exists already")
        self.name = name


class UnknownKey(LookupError):
    """No key of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no key named {name!r}")
        self.name = name


class StoreUnavailable(RuntimeError):
    """The store (Redis) cannot be reached: keys cannot be created or changed now."""


class KeyStore(Protocol):
    """Where key records live. Every replica of the front reads the same store."""

    degraded: bool  # lookups answer from the replica's last view (its store is unreachable)

    def create(self, spec: KeySpec) -> tuple[str, TenantKey]:
        """A new key: its key string (shown once, stored only hashed) and its record."""
        ...

    def by_hash(self, key_hash: str) -> TenantKey | None: ...

    def list(self) -> list[TenantKey]: ...

    def update(self, name: str, changes: KeyFields) -> TenantKey: ...

    def revoke(self, name: str) -> TenantKey: ...

    def close(self) -> None: ...
