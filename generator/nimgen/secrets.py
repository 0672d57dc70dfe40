"""What a secret value looks like, wherever nimgen meets one: environment files, rendered files, manifests.

nimgen only ever references secrets (Secret names, ExternalSecrets); a value that looks like a
credential anywhere is refused, with its place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# Values that are credentials whatever key holds them.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an NGC API key", re.compile(r"\bnvapi-[A-Za-z0-9_-]{20,}")),
    ("an NGC API key", re.compile(r"\b[A-Za-z0-9]{26}:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    # A password that is a template placeholder ("{{ .apikey }}", filled in-cluster by External Secrets) is none.
    ("a registry credential",
     re.compile(r'"auths"\s*:\s*\{\s*"[^"]+"\s*:\s*\{[^}]*"(auth|password)"\s*:\s*"(?!\{\{)[^"]+')),
)
# Keys whose literal value is a secret (an AWS secret key, a password, a token).
SECRET_KEYS = re.compile(r"(secret[_-]?access[_-]?key|password|passwd|api[_-]?key|token|credentials?)$", re.IGNORECASE)
# Literal values under such keys that are references or placeholders, not secrets.
NOT_A_SECRET = re.compile(r"^(|true|false|\$\{[^}]+\}|<[^>]+>|changeme|admin-password|admin-user)$", re.IGNORECASE)

# Substrings every credential above (or a secret-looking key) puts into a document's JSON text: one C-speed
# scan per document; only documents that trip it are walked value by value (a thousand manifests, almost
# none with anything secret-looking).
_TELLTALES = ("nvapi-", "hf_", "akia", "asia", "private key-----", "auths")  # auths: also inside JSON strings
_KEY_TELLTALES = tuple(f'{key}": "' for key in ("secretaccesskey", "secret_access_key", "secret-access-key",
                                                 "password", "passwd", "apikey", "api_key", "api-key", "token",
                                                 "credential", "credentials"))
_LEGACY_NGC_KEY = re.compile(r"[A-Za-z0-9]{26}:[0-9a-f]{8}-")

Path = tuple[str | int, ...]


def may_hold_secrets(data: Any) -> bool:
    """Whether a document is worth walking for credentials (never false for one that holds one)."""
    text = json.dumps(data, default=str)
    lower = text.lower()
    return (any(telltale in lower for telltale in _TELLTALES + _KEY_TELLTALES)
            or (":" in text and _LEGACY_NGC_KEY.search(text) is not None))


def secret_in_text(text: str) -> str | None:
    """What credential a piece of text holds, if any."""
    for what, pattern in SECRET_PATTERNS:
        if pattern.search(text):
            return what
    return None


def find_secrets(data: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, what) of every value in a document that looks like a credential."""
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if isinstance(value, str) and SECRET_KEYS.search(str(key)) and not NOT_A_SECRET.match(value) \
                    and not value.startswith(("secretKeyRef", "arn:")) and len(value) >= 8:
                yield child, f"a literal value under {key!r}"
            else:
                yield from find_secrets(value, child)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from find_secrets(value, (*path, i))
    elif isinstance(data, str):
        what = secret_in_text(data)
        if what:
            yield path, what
