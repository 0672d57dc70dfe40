"""Charts of the repository must render the same objects at every Argo CD refresh: no `lookup`, randomness,
clock or generated keys inside template actions (comments, strings and plain text do not count)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nimgen.validation.determinism import NONDETERMINISTIC, calls, scan
from test_validate import validate

TEMPLATE = "charts/nim-llm/templates/extra.yaml"



def used(text: str) -> list[str]:
    return [name for _, name in calls(text) if name in NONDETERMINISTIC]


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ randAlphaNum 16 }}", ["randAlphaNum"]),
    ("{{- randAlpha 3 -}}", ["randAlpha"]),
    ("{{ .Values.x | default (randNumeric 4) | quote }}", ["randNumeric"]),
    ("{{ 10 | randAscii }}", ["randAscii"]),
    ('{{ now | date "2006-01-02" }}', ["now", "date"]),
    ('{{ dateInZone "15:04" (now) "UTC" }}', ["dateInZone", "now"]),
    ("{{ $k := genPrivateKey \"rsa\" }}{{ $ca := genCA \"x\" 365 }}", ["genPrivateKey", "genCA"]),
    ('{{ (lookup "v1" "Secret" .Release.Namespace "s").data }}', ["lookup"]),
    ("{{ uuidv4 }} {{ randInt 1 9 }} {{ randBytes 8 }}", ["uuidv4", "randInt", "randBytes"]),
    ('{{ genSelfSignedCert "a" nil nil 1 }}{{ genSignedCert "a" nil nil 1 $ca }}',
     ["genSelfSignedCert", "genSignedCert"]),
    ("{{ if true }}\n  {{- $x := list 1 2 | shuffle }}\n{{ end }}", ["shuffle"]),
    ('{{ bcrypt "p" }}{{ htpasswd "u" "p" }}{{ encryptAES "k" "t" }}', ["bcrypt", "htpasswd", "encryptAES"]),
    # Not calls: text, comments, strings, fields and variables.
    ("now randAlphaNum lookup uuidv4", []),
    ("{{/* randAlphaNum 5 and now */}}{{- /* lookup */ -}}", []),
    ('{{ "randAlphaNum" }} {{ `now }}` }} {{ "a \\" now" }}', []),
    ("{{ .Values.now }} {{ $now := 1 }}{{ $now }} {{ .Values.lookup.uuidv4 }}", []),
    ("{{ include \"chart.now\" . }} {{ nowhere }} {{ randomize }}", []),
])
def test_calls_inside_actions_only(template: str, expected: list[str]) -> None:
    assert used(template) == expected


def test_every_listed_function_is_found() -> None:
    for name in NONDETERMINISTIC:
        assert used(f"a: {{{{ {name} }}}}\nb: {{{{ .Values.x | {name} }}}}\nc: {{{{ ({name} 1) }}}}") == [name] * 3


def test_the_charts_nimgen_ships_are_deterministic(rendered_repo: Path) -> None:
    charts = sorted(p.name for p in (rendered_repo / "charts").iterdir() if p.is_dir())
    assert "nim-llm" in charts
    assert [use for chart in charts for use in scan(rendered_repo, f"charts/{chart}")] == []


def test_random_value_in_a_chart_is_an_error(repo_copy: Path, crd_schemas: Path) -> None:
    (repo_copy / TEMPLATE).write_text(
        "{{- /* randAlphaNum in a comment is fine; so is now in text */ -}}\n"
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: {{ .Release.Name }}-extra\n"
        "data:\n  token: {{ randAlphaNum 16 | quote }}\n"
        '  stamp: {{ now | date "2006" | quote }}\n')
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    found = [line for line in result.output.splitlines() if "[determinism]" in line]
    why = ": Argo CD renders the chart at every refresh and would apply a different object each time " \
          "(Applications llama-3-1-70b-instruct, llama3-8b-instruct)"
    assert found == [
        f"error: prod {TEMPLATE}:7: [determinism] calls randAlphaNum, which returns something random at every render"
        + why,
        f"error: prod {TEMPLATE}:8: [determinism] calls date, which formats in the repo-server's local time zone and "
        "takes the current time for anything but a time or a number" + why,
        f"error: prod {TEMPLATE}:8: [determinism] calls now, which reads the clock" + why,
    ]


def test_lookup_in_a_helper_is_an_error(repo_copy: Path, crd_schemas: Path) -> None:
    helpers = repo_copy / "charts/nim-llm/templates/_helpers.tpl"
    helpers.write_text(helpers.read_text() + '\n{{- define "nim-llm.existing" -}}\n'
                       '{{- (lookup "v1" "Secret" .Release.Namespace "x") | toYaml -}}\n{{- end }}\n')
    line = helpers.read_text().count("\n") - 1
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    assert f"error: prod charts/nim-llm/templates/_helpers.tpl:{line}: [determinism] calls lookup, which reads the " \
           "live cluster" in result.output
