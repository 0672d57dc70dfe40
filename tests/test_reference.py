"""The environment file's field reference: generated from the JSON Schema, committed in sync, every field in it."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nimgen.environment.reference import main, reference_markdown
from nimgen.environment.schema import environment_schema

PROJECT = Path(__file__).resolve().parents[1]
DOCUMENT = PROJECT / "docs" / "environment-reference.md"
REGENERATE = "python -m nimgen.environment.reference --write docs/environment-reference.md"
FIELD_LINK = re.compile(r"^\[`([^`]+)`\]\(#([^)]+)\)$")


def sections(text: str) -> dict[str, str]:
    """Each section's Markdown, by the anchor before its heading."""
    parts = re.split(r'^<a id="([^"]+)"></a>\n', text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def cells(line: str) -> list[str]:
    """A table row's cells: split at the pipes that are not escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def rows(section: str) -> dict[str, list[str]]:
    """A section's field rows, by field name."""
    found: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith(("| Field |", "| --- |")):
            row = cells(line)
            found[re.findall(r"`([^`]+)`", row[0])[0]] = row
    return found


def row_at(text: str, path: tuple[str, ...]) -> list[str] | None:
    """The row of a field, found as a reader would: from the top level, through each field's link to the
    section of the object it holds (and, from an object that takes another's fields, through that link)."""
    found = sections(text)
    anchor, row = "top-level", None
    for name in path:
        if row is not None:
            link = FIELD_LINK.match(row[0])
            if link is None:
                return None
            anchor = link.group(2)
        body = found.get(anchor, "")
        same = re.search(r"^Same fields as \[`[^`]+`\]\(#([^)]+)\)(.*)$", body, flags=re.MULTILINE)
        if same is not None:
            if f"`{name}`" not in same.group(2).split(". Required here")[0]:
                return None
            body = found.get(same.group(1), "")
        row = rows(body).get(name)
        if row is None:
            return None
    return row


def schema_paths(schema: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every property path of the schema, walked on its own: property names through $refs, list items and
    map values, a shared definition under each of its users."""
    paths: list[tuple[str, ...]] = []

    def walk(node: Any, prefix: tuple[str, ...], seen: frozenset[str]) -> None:
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return
            seen = seen | {ref}
            target = schema["$defs"][ref.removeprefix("#/$defs/")]
            node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
        if not isinstance(node, dict):
            return
        for name, child in node.get("properties", {}).items():
            paths.append((*prefix, name))
            walk(child, (*prefix, name), seen)
        for key in ("items", "additionalProperties"):
            walk(node.get(key), prefix, seen)

    walk(schema, (), frozenset())
    return paths


def finishes(call: Callable[[], str], seconds: float = 20.0) -> str:
    """`call()`, failing (rather than hanging the run) when it does not return in time."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # noqa: BLE001 - raised again in the test's own thread, below
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"did not finish within {seconds} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@pytest.fixture(scope="module")
def reference() -> str:
    return reference_markdown(environment_schema())


def test_committed_reference_is_generated_from_the_schema(reference: str) -> None:
    committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.is_file() else ""
    assert committed == reference, (
        f"docs/environment-reference.md does not match the schema; regenerate it from {PROJECT}: {REGENERATE}")


def test_header_says_where_it_comes_from(reference: str) -> None:
    header = reference.splitlines()[0]
    assert "generator/nimgen/schemas/environment.schema.json" in header
    assert f"`{REGENERATE}`" in header
    assert "do not edit by hand" in header


def test_every_property_path_is_documented(reference: str) -> None:
    paths = schema_paths(environment_schema())
    assert ("modelDefaults", "autoscaling", "engine") in paths
    assert ("nodePools", "capacityReservations", "tags") in paths
    missing = [".".join(path) for path in paths if row_at(reference, path) is None]
    assert not missing, f"not reachable in the reference: {missing}"


def test_every_link_has_its_anchor(reference: str) -> None:
    anchors = re.findall(r'<a id="([^"]+)"></a>', reference)
    assert len(anchors) == len(set(anchors))
    assert set(re.findall(r"\]\(#([^)]+)\)", reference)) <= set(anchors)


def test_a_row_shows_type_required_default_and_description(reference: str) -> None:
    device = row_at(reference, ("cluster", "devicePlugin"))
    assert device is not None
    assert device[1:4] == ['`"auto"` \\| `"none"`', "no", "`auto`"]
    assert device[4].startswith("NVIDIA device plugin: auto installs")
    assert (row_at(reference, ("models", "name")) or [])[2] == "yes"
    assert (row_at(reference, ("models", "replicas", "min")) or [])[1:3] == ["integer from 1 to 1000", "yes"]
    assert (row_at(reference, ("nodePools", "capacityTypes")) or [])[3] == '`["on-demand"]`'
    assert (row_at(reference, ("ngc", "externalSecret", "refreshInterval")) or [])[3] == "`1h`"


def test_a_row_links_objects_and_names_formats(reference: str) -> None:
    cache = row_at(reference, ("models", "cache"))
    assert cache is not None and cache[0] == "[`cache`](#models-cache)"
    assert "## `models[].cache`" in sections(reference)["models-cache"]
    assert (row_at(reference, ("models", "sharedMemory")) or [])[1] == "[quantity](#format-quantity)"
    assert (row_at(reference, ("nodePools", "consolidateAfter")) or [])[1] == "[duration](#format-duration)"
    assert (row_at(reference, ("models", "image")) or [])[1] == "image reference (1 to 512 characters)"
    assert (row_at(reference, ("nodePools", "gpuLimit")) or [])[1] == "integer from 1 to 10,000"


def test_hints_are_added_to_the_description(reference: str) -> None:
    role = row_at(reference, ("cluster", "karpenter", "nodeRole"))
    assert role is not None and role[4].endswith("Hint: use the IAM role name, not its ARN.")
    # A shared format's hint is said once, in its own row, not under every field of that format.
    name = row_at(reference, ("name",))
    assert name is not None and "Hint" not in name[4]
    assert "use lower-case letters" not in name[4]
    assert "Use lower-case letters, digits and '-'" in sections(reference)["value-formats"]


def test_shared_definitions_are_described_once(reference: str) -> None:
    assert reference.count("| `scaleDownStabilizationSeconds` |") == 1
    defaults = sections(reference)["modeldefaults"]
    assert "Same fields as [`models[]`](#models)" in defaults
    assert "| Field |" not in defaults
    assert "Only in `models[]`: `name`, `image`" in defaults


def test_object_level_rules_and_hints_show(reference: str) -> None:
    body = sections(reference)["nodepools-capacityreservations"]
    assert "Give exactly one of `id` or `tags`." in body
    assert "Hint: select a reservation by id, or by tags" in body
    assert rows(body)["id"][2] == "exactly one of `id` or `tags`"


def test_table_cells_escape_pipes_and_newlines() -> None:
    schema = {"type": "object", "properties": {
        "mode": {"description": "first | second\nthird <name>", "enum": ["a|b", "c"], "default": "a|b"},
        "word": {"type": "string", "pattern": "^(x|y)$"},
    }}
    text = reference_markdown(schema)
    mode = next(line for line in text.splitlines() if line.startswith("| `mode`"))
    assert len(cells(mode)) == 5
    assert cells(mode)[1:] == ['`"a\\|b"` \\| `"c"`', "no", "`a\\|b`", "first \\| second<br>third \\<name>"]
    word = next(line for line in text.splitlines() if line.startswith("| `word`"))
    assert cells(word)[1] == "string matching `^(x\\|y)$`"


def test_self_referencing_schema_terminates() -> None:
    schema = {
        "type": "object",
        "properties": {
            "root": {"$ref": "#/$defs/node"},
            "loop": {"$ref": "#/$defs/loop"},
            "nested": {"$ref": "#/$defs/nested"},
            "whole": {"$ref": "#"},
        },
        "$defs": {
            "node": {"type": "object", "description": "A tree node.", "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                "parent": {"$ref": "#/$defs/node"},
            }},
            "loop": {"$ref": "#/$defs/loop"},
            "nested": {"type": "array", "items": {"$ref": "#/$defs/nested"}},
        },
    }
    text = finishes(lambda: reference_markdown(schema))
    assert text.count("## `root`") == 1
    assert (row_at(text, ("root", "children")) or [""])[0] == "[`children`](#root)"
    assert (row_at(text, ("root", "parent", "children", "name")) or [])[1] == "string"
    assert "Also at: `root.children[]`, `root.parent`." in text
    assert (row_at(text, ("nested",)) or [])[1] == "list of `nested`"
    assert (row_at(text, ("whole",)) or [""])[0] == "[`whole`](#top-level)"


def test_output_is_deterministic() -> None:
    schema = environment_schema()
    first = reference_markdown(schema)
    assert reference_markdown(schema) == first
    assert reference_markdown(copy.deepcopy(schema)) == first


def test_main_writes_only_when_the_text_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "reference.md"
    assert main(["--write", str(target)]) == 0
    assert target.read_bytes() == reference_markdown(environment_schema()).encode("utf-8")
    written = target.stat().st_mtime_ns
    assert main(["--write", str(target)]) == 0
    assert target.stat().st_mtime_ns == written
    assert capsys.readouterr().out.splitlines() == [f"wrote {target}", f"{target} is up to date"]
    target.write_text("stale\n", encoding="utf-8")
    main(["--write", str(target)])
    assert target.read_text(encoding="utf-8") == reference_markdown(environment_schema())


@pytest.mark.subprocess
def test_module_prints_the_reference() -> None:
    done = subprocess.run([sys.executable, "-m", "nimgen.environment.reference"], capture_output=True, text=True,
                          encoding="utf-8", check=True)
    assert done.stdout == reference_markdown(environment_schema())
