"""Charts of this repository must render the same objects every time: no clock, randomness or cluster reads.

Argo CD renders a chart again at every refresh and compares the result with the cluster; a template that
calls `randAlphaNum` or `now` gives a different object each time (an Application forever out of sync, a
password or certificate replaced at every sync), and `lookup` sees no cluster under `helm template`. The
functions are those of Helm's engine (pkg/engine/funcs.go) and Sprig (functions.go: its `nonhermeticFunctions`
plus the random, clock and crypto functions it does not list there). Only calls inside template actions
count: text outside `{{ }}`, comments, strings, fields (`.Values.now`) and variables (`$now`) do not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_RANDOM = "returns something random at every render"
_CLOCK = "reads the clock"
_DATE = ("formats in the repo-server's local time zone and takes the current time for anything but a time or "
         "a number")
_KEY = "generates a new key or certificate (random, valid from now) at every render"
NONDETERMINISTIC: dict[str, str] = {
    # Helm: under `helm template` (Argo CD) lookup sees no cluster and returns nothing.
    "lookup": "reads the live cluster, which Argo CD's `helm template` never sees (it returns nothing)",
    # Sprig, clock.
    "now": _CLOCK, "ago": f"{_CLOCK} (time since a date)",
    "date": _DATE, "dateInZone": _DATE, "date_in_zone": _DATE, "htmlDate": _DATE, "htmlDateInZone": _DATE,
    "dateModify": f"shifts a time that only the clock can give it ({_CLOCK})",
    "date_modify": f"shifts a time that only the clock can give it ({_CLOCK})",
    "mustDateModify": f"shifts a time that only the clock can give it ({_CLOCK})",
    "must_date_modify": f"shifts a time that only the clock can give it ({_CLOCK})",
    # Sprig, randomness.
    "randAlphaNum": _RANDOM, "randAlpha": _RANDOM, "randNumeric": _RANDOM, "randAscii": _RANDOM,
    "randBytes": _RANDOM, "randInt": _RANDOM, "uuidv4": _RANDOM, "shuffle": _RANDOM,
    "bcrypt": f"{_RANDOM} (a random salt)", "htpasswd": f"{_RANDOM} (a bcrypt hash with a random salt)",
    "encryptAES": f"{_RANDOM} (a random IV)",
    "genPrivateKey": _KEY, "genCA": _KEY, "genCAWithKey": _KEY, "genSelfSignedCert": _KEY,
    "genSelfSignedCertWithKey": _KEY, "genSignedCert": _KEY, "genSignedCertWithKey": _KEY,
    # Sprig, environment.
    "getHostByName": "resolves a host name at render time (DNS)",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTE_END = {'"': re.compile(r'"|\\.', re.DOTALL), "'": re.compile(r"'|\\.", re.DOTALL)}


@dataclass(frozen=True)
class Use:
    """One call of a non-deterministic function in a template file."""

    file: str  # repository-relative
    line: int
    function: str

    @property
    def why(self) -> str:
        return NONDETERMINISTIC[self.function]


def _skip_quoted(text: str, start: int) -> int:
    """Offset just past the string or character literal opening at `start`."""
    quote = text[start]
    if quote == "`":  # raw string: no escapes, may span lines
        end = text.find("`", start + 1)
        return len(text) if end < 0 else end + 1
    position = start + 1
    while (match := _QUOTE_END[quote].search(text, position)) is not None:
        if match.group() == quote:
            return match.end()
        position = match.end()
    return len(text)


def _action_body(text: str, start: int) -> tuple[int, int, bool]:
    """(body start, body end, is a comment) of the action whose `{{` is at `start`; end is where `}}` begins."""
    body = start + 2
    if text.startswith("-", body) and text[body + 1:body + 2].isspace():
        body += 2  # trim marker "{{- "
    comment = text.startswith("/*", body)
    position = body
    if comment:
        close = text.find("*/", body + 2)
        end = text.find("}}", close + 2) if close >= 0 else -1
        return body, len(text) if end < 0 else end, True
    while position < len(text):
        char = text[position]
        if char in "\"'`":
            position = _skip_quoted(text, position)
        elif text.startswith("}}", position):
            return body, position, comment
        else:
            position += 1
    return body, len(text), comment


def calls(text: str) -> Iterator[tuple[int, str]]:
    """(offset, name) of every bare identifier inside the template's actions, strings and comments left out."""
    position = 0
    while (start := text.find("{{", position)) >= 0:
        body, end, comment = _action_body(text, start)
        position = end + 2
        if comment:
            continue
        cursor = body
        while cursor < end:
            char = text[cursor]
            if char in "\"'`":
                cursor = _skip_quoted(text, cursor)
                continue
            match = _IDENTIFIER.match(text, cursor)
            if match is None:
                cursor += 1
                continue
            previous = text[cursor - 1] if cursor > body else " "
            # `.Values.now` is a field and `$now` a variable: only a bare word names a function.
            if previous not in ".$" and not previous.isalnum():
                yield cursor, match.group()
            cursor = match.end()


def _template_files(chart: Path) -> Iterator[Path]:
    """Every file Helm parses as a template: templates/ of the chart and of its unpacked subcharts."""
    for directory, dirs, files in os.walk(chart):
        dirs.sort()
        relative = Path(directory).relative_to(chart).parts
        if "templates" in relative:
            # NOTES.txt is shown after an install, never applied: Argo CD ignores it.
            yield from (Path(directory) / name for name in sorted(files) if name != "NOTES.txt")


def scan(root: Path, chart: str) -> list[Use]:
    """Every non-deterministic call in the templates of `chart` (a folder relative to the repository root)."""
    found = []
    for path in _template_files(root / chart):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # unreadable: Helm's render fails on it and reports it
        relative = path.relative_to(root).as_posix()
        found += [Use(relative, text.count("\n", 0, offset) + 1, name)
                  for offset, name in calls(text) if name in NONDETERMINISTIC]
    return found
