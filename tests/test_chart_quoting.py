"""Every value a chart template writes into YAML is quoted or serialised, never interpolated raw.

A raw `key: {{ .Values.x }}` lets a value carrying a newline or `: ` add YAML of its own (for example
`tags: {Name: '*'}` selector terms on an EC2NodeClass). Each output action in a key or value position must
end in `quote` (strings) or `toJson`/`toYaml` (numbers, booleans, structures).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CHARTS = Path(__file__).resolve().parents[1] / "generator" / "nimgen" / "charts"
TEMPLATES = sorted(p for p in CHARTS.glob("*/templates/*") if p.name != "NOTES.txt")
# An output action ({{ ... }}, not a control action) in a YAML key or value position.
_ACTION = re.compile(r"\{\{-?\s*(?P<body>.*?)\s*-?\}\}")
_CONTROL = re.compile(r"^(if|else|end|range|with|define|template|block|/\*|\$[A-Za-z_]*\s*:?=|fail\b)")
_KEY = re.compile(r"^\s*(- )?[\w./\"'-]+:$|^\s*-$")
_RAW_STRING = re.compile(r"`[^`]*`")  # Go raw strings: literal text, no actions inside


def _positions(line: str) -> list[str]:
    """Bodies of the output actions that stand as a YAML key or value on this line."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return []
    line = _RAW_STRING.sub("`raw`", line)
    found = []
    for match in _ACTION.finditer(line):
        body = match["body"]
        if _CONTROL.match(body):
            continue
        # Earlier output actions stand for text (a key), control actions for nothing.
        before = _ACTION.sub(lambda m: "" if _CONTROL.match(m["body"]) else "k", line[:match.start()]).rstrip()
        after = line[match.end():]
        if _KEY.match(before) or (not before.strip() and after.startswith(":")):
            found.append(body)
    return found


def _safe(body: str) -> bool:
    stages = [stage.strip() for stage in body.split("|")]
    return stages[-1] in {"quote", "toJson", "toYaml"} or stages[-1].startswith(("nindent", "indent"))


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(p.relative_to(CHARTS)) for p in TEMPLATES])
def test_template_values_are_quoted_or_serialised(template: Path) -> None:
    raw = [f"{number}: {line.strip()}" for number, line in enumerate(template.read_text().splitlines(), 1)
           for body in _positions(line) if not _safe(body)]
    assert raw == [], "interpolated raw (add | quote, or | toJson for numbers and booleans):\n" + "\n".join(raw)


def test_the_audit_sees_raw_values() -> None:
    assert _positions("  name: {{ .Values.name }}") == [".Values.name"]
    assert not _safe(".Values.name")
    assert _safe('.Values.name | quote') and _safe(".Values.port | toJson")
    assert _positions("    - {{ .Release.Namespace }}") == [".Release.Namespace"]
    assert _positions("  {{ $key }}: {{ $value | quote }}") == ["$key", "$value | quote"]
    assert _positions("{{- if .Values.x }}") == [] and _positions("  # {{ .Values.x }}") == []
    assert _positions("{{- with .Values.image.tag }}:{{ . }}{{ end }}") == []  # inside a scalar helper
