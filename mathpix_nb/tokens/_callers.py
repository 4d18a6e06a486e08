"""Callers allowed to ask for app tokens: named bearer secrets, kept only as SHA-256 digests.

A callers file has one caller a line, ``NAME SECRET`` where SECRET is either the digest form
``sha256:<64 hex digits>`` (recommended: the file then holds nothing a thief can replay) or a
plain secret, hashed as soon as it is read. Blank lines and ``#`` comments are ignored.
The environment variable ``MATHPIX_NB_TOKEN_CALLERS`` holds the same entries as ``NAME=SECRET``
separated by whitespace, commas or newlines.

Bearer secrets are long random strings (see :func:`new_secret`), so one fast hash is the right
tool; a slow password hash would only add latency. Lookups compare the presented secret's
digest against every stored digest with :func:`hmac.compare_digest`, so the time taken does not
depend on how much of a digest matched, nor on which caller it belongs to.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._exceptions import ConfigurationError

CALLERS_ENV = "MATHPIX_NB_TOKEN_CALLERS"
_DIGEST_PREFIX = "sha256:"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
_MIN_PLAIN_SECRET = 16


def hash_secret(secret: str) -> str:
    """Return the stored form of a bearer secret: ``sha256:<hex>``."""
    return _DIGEST_PREFIX + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh random bearer secret (256 bits, URL-safe) for a new caller."""
    return "mnt_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Callers:
    """Caller name -> digest of its bearer secret. ``repr`` shows names only."""

    digests: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name, digest in self.digests.items():
            if not _NAME_RE.match(name):
                raise ConfigurationError(
                    f"caller name {name!r} is not allowed: use 1-64 letters, digits or _.@+-"
                )
            if not _DIGEST_RE.match(digest):
                raise ConfigurationError(
                    f"caller {name!r}: stored secret must look like 'sha256:<64 hex digits>' "
                    "(use hash_secret() or `mathpix-nb token-server hash`)"
                )

        if len(set(self.digests.values())) != len(self.digests):
            raise ConfigurationError(
                "two callers share the same secret; give every caller its own "
                "(`mathpix-nb token-server new-caller NAME`)"
            )

    def __repr__(self) -> str:
        return f"Callers(names={sorted(self.digests)!r})"

    def __len__(self) -> int:
        return len(self.digests)

    @classmethod
    def from_secrets(cls, entries: Mapping[str, str]) -> Callers:
        """Build from ``{name: secret-or-digest}``; plain secrets are hashed here."""
        return cls({name: _to_digest(name, value) for name, value in entries.items()})

    def identify(self, presented: str) -> str | None:
        """The name of the caller whose secret is ``presented``, or None.

        Every stored digest is compared (no early exit) in constant time.
        """
        candidate = hash_secret(presented).encode("ascii")
        found: str | None = None
        for name, digest in self.digests.items():
            if hmac.compare_digest(candidate, digest.encode("ascii")):
                found = name
        return found

    def merged(self, other: Callers) -> Callers:
        """Both sets of callers; a name present in both must not be defined twice."""
        clash = sorted(set(self.digests) & set(other.digests))
        if clash:
            raise ConfigurationError(f"caller(s) {clash} are defined twice (file and environment)")
        return Callers({**self.digests, **other.digests})


def _to_digest(name: str, value: str) -> str:
    value = value.strip()
    if value.startswith(_DIGEST_PREFIX):
        return value.lower()
    if len(value) < _MIN_PLAIN_SECRET:
        raise ConfigurationError(
            f"caller {name!r}: the secret is too short (under {_MIN_PLAIN_SECRET} characters); "
            "generate one with `mathpix-nb token-server new-caller NAME`"
        )
    return hash_secret(value)


def _parse_entries(
    pairs: Iterable[tuple[int, str, str]], where: str, unit: str = "line"
) -> Callers:
    entries: dict[str, str] = {}
    for lineno, name, value in pairs:
        if name in entries:
            raise ConfigurationError(f"{where}: caller {name!r} appears twice ({unit} {lineno})")
        if not value:
            raise ConfigurationError(
                f"{where}: {unit} {lineno} names caller {name!r} but gives no secret "
                "(expected 'NAME sha256:<hex>')"
            )
        entries[name] = value
    return Callers.from_secrets(entries)


def load_callers_file(path: str | os.PathLike[str]) -> Callers:
    """Read a callers file (``NAME SECRET`` per line, ``#`` comments)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the callers file {str(p)!r} ({exc.strerror or exc}); "
            "create it with `mathpix-nb token-server new-caller NAME --callers-file PATH`"
        ) from None
    pairs = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        pairs.append((lineno, parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return _parse_entries(pairs, f"callers file {str(p)!r}")


def load_callers_env(environ: Mapping[str, str] | None = None) -> Callers:
    """Read ``MATHPIX_NB_TOKEN_CALLERS`` (``NAME=SECRET`` entries); empty if unset."""
    env = os.environ if environ is None else environ
    raw = env.get(CALLERS_ENV, "")
    pairs = []
    for index, item in enumerate(re.split(r"[\s,]+", raw.strip()), start=1):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(
                f"{CALLERS_ENV}: entry {index} has no '=' (expected NAME=sha256:<hex>)"
            )
        pairs.append((index, name, value))
    return _parse_entries(pairs, CALLERS_ENV, unit="entry")
