"""Who may use the console: per-user tokens, two roles, constant-time checks.

Tokens are configured only through a YAML file (``MW_CONSOLE_USERS_FILE``) that holds
either the token's SHA-256 (``token_sha256``) or the name of an environment variable that
holds the token (``token_env``)::

    users:
      - {name: 值班员张三, role: duty-officer, token_sha256: "9f86d0…"}
      - {name: admin, role: matrix-manager, token_env: MW_CONSOLE_TOKEN_ADMIN}

A plain SHA-256 is enough because tokens are random 256-bit strings (``matrixwatch
console token`` makes them), not passwords. Every presented token is hashed and compared
with every user's hash through ``hmac.compare_digest``, without an early exit, so the time
taken does not tell which user or prefix matched. Tokens never appear in a log line, an
error message or the audit log; ``User`` keeps only the hash and hides it from repr.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DUTY_OFFICER = "duty-officer"
MATRIX_MANAGER = "matrix-manager"
ROLES: tuple[str, ...] = (DUTY_OFFICER, MATRIX_MANAGER)


class UsersError(ValueError):
    """A users file that cannot be used (the message never contains a token)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    digest: str = field(repr=False)

    def public(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role}


def parse_users(data: Any, env: Mapping[str, str] | None = None,
                source: str = "users file") -> list[User]:
    """Users from the YAML document; a user whose ``token_env`` is unset is an error."""
    env = os.environ if env is None else env
    if not isinstance(data, Mapping) or not isinstance(data.get("users"), list):
        raise UsersError(f"{source}: expected a mapping with a 'users' list")
    out: list[User] = []
    seen: set[str] = set()
    for i, row in enumerate(data["users"]):
        where = f"{source}: users[{i}]"
        if not isinstance(row, Mapping) or not str(row.get("name") or "").strip():
            raise UsersError(f"{where}: missing field 'name'")  # blank too: nobody's name
        name = str(row["name"])
        if name in seen:
            raise UsersError(f"{where}: duplicate user {name!r}")
        seen.add(name)
        role = str(row.get("role", ""))
        if role not in ROLES:
            raise UsersError(f"{where}: role must be one of {', '.join(ROLES)}")
        if row.get("token_sha256"):
            digest = str(row["token_sha256"]).strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise UsersError(f"{where}: token_sha256 must be 64 hex digits")
        elif row.get("token_env"):
            var = str(row["token_env"])
            token = env.get(var)
            if not token:
                raise UsersError(f"{where}: environment variable {var} is not set")
            digest = token_hash(token)
        else:
            raise UsersError(f"{where}: needs token_sha256 or token_env")
        out.append(User(name, role, digest))
    return out


class Users:
    """The users file, re-read when it changes (adding a user needs no restart)."""

    def __init__(self, path: Path | None = None, users: list[User] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.env = env
        self._users: list[User] = list(users or [])
        self._mtime: float | None = None
        if path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            st = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except OSError as e:
            raise UsersError(f"{self.path}: cannot read: {e.strerror}") from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsersError(f"{self.path}: invalid YAML") from e
        self._users = parse_users(data, self.env, str(self.path))
        self._mtime = st.st_mtime

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return  # keep the last good list
        if mtime != self._mtime:
            try:
                self._load()
            except UsersError:
                self._mtime = mtime  # a broken edit keeps the last good list

    def all(self) -> list[User]:
        self._refresh()
        return list(self._users)

    def authenticate(self, token: str | None) -> User | None:
        """The user whose token this is, compared in constant time against all users."""
        if not token:
            return None
        presented = token_hash(token)
        found: User | None = None
        for u in self.all():
            if hmac.compare_digest(presented, u.digest) and found is None:
                found = u
        return found

    def get(self, name: str) -> User | None:
        return next((u for u in self.all() if u.name == name), None)


def users_yaml(name: str, role: str, token: str) -> str:
    """One users-file entry for a new token (only the hash is written)."""
    row = {"name": name, "role": role, "token_sha256": token_hash(token)}
    return yaml.safe_dump({"users": [row]}, allow_unicode=True, sort_keys=False)


def ensure_dev_users(path: Path, name: str = "admin",
                     role: str = MATRIX_MANAGER) -> str | None:
    """For ``matrixwatch run``: create a users file with one fresh token if none exists.

    Returns the new token (shown once to the operator at the terminal), or None when the
    file was already there. Only its hash is stored.
    """
    if path.exists():
        return None
    token = new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(users_yaml(name, role, token))
    return token
