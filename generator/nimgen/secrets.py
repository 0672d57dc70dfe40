"""What a secret value looks like, wherever nimgen meets one: environment files, rendered files, manifests.

nimgen only ever references secrets (Secret names, ExternalSecrets); a value that looks like a
credential anywhere is refused, with its place.

Boundaries: a key is found wherever it sits (after "_", a letter, a quote, "=", inside JSON text),
so no pattern uses \\b, which a word character in front of a key would defeat. A key with a
distinctive prefix (nvapi-, hf_, ghp_, xoxb-, ...) is matched from that prefix with no left
boundary at all. A key without one (an AWS key id, a legacy NGC key) is told from the longer
run of characters around it by lookarounds on its own alphabet only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Path = tuple[str | int, ...]

URL_CREDENTIALS = "a URL with credentials (user[:password]@host)"
# How to fix a finding, where the generic "reference a Secret" advice would not say it.
HINTS: dict[str, str] = {
    URL_CREDENTIALS: "remove the 'user[:password]@' part from the URL and rotate the credential; give Argo "
                     "CD the repository's credentials in a Secret labelled argocd.argoproj.io/secret-type: "
                     "repository, created outside Git (or use an SSH URL such as git@github.com:org/repo.git "
                     "with the SSH key in that Secret)",
}

# Where a URL's scheme ends; every "://" in a text is looked at, so each URL of a list glued
# together with commas is seen. The scheme is the run of scheme characters before "://", from its first
# letter. A match may start only where such a run starts: starting inside a run rescans the rest of it,
# which is quadratic in a long run without "://" (minutes for one 5 MB value).
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])[0-9+.-]*([A-Za-z][A-Za-z0-9+.-]*)://")
# The rest of a URL in free text: up to whitespace, a quote, a backslash or a control character,
# none of which a URL holds unescaped.
_URL_REST = re.compile(r"[^\s\x00-\x1f\"'<>\\`]*")
# RFC 3986 userinfo (unreserved, %-encoded, sub-delims, ":"), plus "@" and non-ASCII, which people
# type into passwords unencoded. Anything else ("{", "|", "[", spaces) is a template or a
# regular expression, not credentials: "https://${TOKEN}@host", "(https://|ssh://|git@)".
_USERINFO = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\u0080-\U0010ffff]+")
# Credentials that are filled in later: $VAR / $(VAR) (shell, Kubernetes env expansion), printf
# verbs, a masked "****".
_PLACEHOLDER = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*|\$\([A-Za-z_][A-Za-z0-9_]*\)|%[sv]|\*+")


def url_credentials(text: str) -> bool:
    """Whether a URL in the text carries a password, or a user name over http(s) (a token, in practice).

    `ssh://git@host/...` and `git@host:org/repo` carry none: SSH takes its key from elsewhere.
    """
    for match in _SCHEME.finditer(text):
        rest = _URL_REST.match(text, match.end())
        try:
            parts = urlsplit(f"{match[1]}://{rest[0] if rest else ''}")
        except ValueError:  # a malformed host ("[" without "]"): not a URL to read credentials from
            continue
        userinfo, at, _ = parts.netloc.rpartition("@")
        if not at or not _USERINFO.fullmatch(userinfo):
            continue
        user, password = parts.username or "", parts.password or ""
        secret = password or (user if parts.scheme.endswith(("http", "https")) else "")
        if secret and not _PLACEHOLDER.fullmatch(secret):
            return True
    return False


@dataclass(frozen=True)
class Detector:
    """One kind of credential: its name, how to find it in a string, what it leaves in a document's text."""

    what: str
    found_in: Callable[[str], object]
    # Searched in the document's lower-cased JSON text: must match whenever found_in matches one
    # of the document's strings (it may match more).
    telltale: re.Pattern[str]


def _regex(what: str, pattern: str, *telltales: str) -> Detector:
    return Detector(what, re.compile(pattern).search, re.compile("|".join(map(re.escape, telltales))))


# Values that are credentials whatever key holds them. The URL check comes first: a token inside a
# repository URL is best fixed the URL's way (an Argo CD repository Secret).
DETECTORS: tuple[Detector, ...] = (
    # "://", then up to the host no "/", "?", "#" or "@" (JSON escapes write none of them), then "@".
    Detector(URL_CREDENTIALS, url_credentials, re.compile(r"://[^/?#@]*@")),
    _regex("an NGC API key", r"nvapi-[A-Za-z0-9_-]{20,}", "nvapi-"),
    # The legacy key has no prefix: 26 alphanumerics, exactly, before ":<uuid>".
    Detector("an NGC API key",
             re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{26}:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}").search,
             # Its tail alone: a pattern that starts with a literal is searched at memchr speed, while one that
             # starts with a class is tried at every position of the text (twenty times slower).
             re.compile(r":[0-9a-f]{8}-")),
    # Alphanumerics only after the prefix: identifiers such as use_hf_transfer or HF_HOME are none.
    _regex("a Hugging Face token", r"hf_[A-Za-z0-9]{30,}", "hf_"),
    # Exactly 20 of [0-9A-Z]: "ASIA" inside a longer upper-case word is none.
    _regex("an AWS access key id", r"(?<![0-9A-Z])(AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])", "akia", "asia"),
    _regex("a PGP private key", r"-----BEGIN PGP PRIVATE KEY BLOCK-----", "private key"),
    _regex("a private key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", "private key"),
    # github.blog 2021-04-05 token formats: prefix + 36 alphanumerics; installation tokens (ghs_) may
    # also be longer JWTs with dots (github.blog changelog 2026-05-15); fine-grained PATs are
    # github_pat_ + 22 + "_" + 59.
    _regex("a GitHub token",
           r"gh[pour]_[A-Za-z0-9]{36}|ghs_[A-Za-z0-9._-]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
           "ghp_", "gho_", "ghu_", "ghr_", "ghs_", "github_pat_"),
    # Slack's token shapes (bot, legacy bot, user, workspace/refresh, legacy session), as gitleaks
    # matches them; a placeholder such as xoxb-your-token has none of them.
    _regex("a Slack token", r"xoxb-[0-9]{10,13}-[0-9]{10,13}[A-Za-z0-9-]*|xoxb-[0-9]{8,14}-[A-Za-z0-9]{18,26}"
           r"|xox[pe](-[0-9]{10,13}){3}-[A-Za-z0-9-]{28,34}|xox[ar]-([0-9]-)?[0-9A-Za-z]{8,48}"
           r"|xox[os]-[0-9]+-[0-9]+-[0-9]+-[0-9a-fA-F]+", "xox"),
    _regex("a Slack webhook URL", r"hooks\.slack\.com/(services|workflows|triggers)/[A-Za-z0-9+/]{43,56}",
           "hooks.slack.com"),
    # A password that is a template placeholder ("{{ .apikey }}", filled in-cluster by External Secrets)
    # is none.
    _regex("a registry credential",
           r'"auths"\s*:\s*\{\s*"[^"]+"\s*:\s*\{[^}]*"(auth|password)"\s*:\s*"(?!\{\{)[^"]+', "auths"),
)
# Keys whose literal value is a secret (an AWS secret key, a password, a token). ASCII-only case folding
# and \Z keep the key telltale below exact (the Kelvin sign is no "k" here; "password\n" is no key).
SECRET_KEYS = re.compile(r"(secret[_-]?access[_-]?key|password|passwd|api[_-]?key|token|credentials?)\Z",
                         re.IGNORECASE | re.ASCII)
# Literal values under such keys that are references or placeholders, not secrets.
NOT_A_SECRET = re.compile(r"(|true|false|\$\{[^}]+\}|<[^>]+>|changeme|admin-password|admin-user)",
                          re.IGNORECASE)
# Every key SECRET_KEYS matches ends with one of these; '": "' is how JSON text follows a key with a string.
# Plain substrings: `in` finds each at memchr speed, where one regex alternation tries every word at every position.
_KEY_TELLTALES = tuple(f'{word}": "' for word in ("accesskey", "access_key", "access-key", "password", "passwd",
                                                  "apikey", "api_key", "api-key", "token", "credential",
                                                  "credentials"))


def may_hold_secrets(data: Any) -> bool:
    """Whether a document is worth walking for credentials (never false for one that holds one).

    One C-speed scan of the document's JSON text per detector: only documents that trip one are walked
    value by value (a thousand manifests, almost none with anything secret-looking).
    """
    try:
        text = json.dumps(data, default=str).lower()
    except (TypeError, ValueError):  # a key JSON cannot write, a cycle: walk it rather than guess
        return True
    return any(key in text for key in _KEY_TELLTALES) or any(d.telltale.search(text) for d in DETECTORS)


def text_may_hold_secrets(text: str) -> bool:
    """Whether any line of a rendered file is worth asking secret_in_text about (never false when one is).

    The detectors' telltales are substrings of what they find, lower-cased: one scan of the whole file
    clears the thousand files of a large tree that hold nothing secret-looking.
    """
    lowered = text.lower()
    return any(detector.telltale.search(lowered) for detector in DETECTORS)


def secret_in_text(text: str) -> str | None:
    """What credential a piece of text holds, if any."""
    for detector in DETECTORS:
        if detector.found_in(text):
            return detector.what
    return None


def find_secrets(data: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, what) of every value in a document that looks like a credential."""
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if isinstance(value, str) and SECRET_KEYS.search(str(key)) and not NOT_A_SECRET.fullmatch(value) \
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
