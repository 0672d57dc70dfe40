"""A Markdown reference of every field of the environment file, generated from its JSON Schema.

`python -m nimgen.environment.reference` prints it; `--write PATH` writes it (docs/environment-reference.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nimgen.environment.reference_text import adds, cell, code, group, literal, number, prose, sentence
from nimgen.environment.schema import environment_schema
from nimgen.templating import render_text

Schema = dict[str, Any]
# An object described by reference to a larger one: that one's path, and its fields the object lacks.
Alias = tuple[str, list[str]]

SOURCE = "generator/nimgen/schemas/environment.schema.json"
COMMAND = "python -m nimgen.environment.reference --write docs/environment-reference.md"

# Readable names of the shared value formats ($defs with no description of their own); any other
# is named from its $defs key ("awsRegion" -> "aws region").
FORMAT_NAMES = {"dnsLabel": "DNS-1123 label", "dnsSubdomain": "DNS-1123 subdomain", "quantity": "quantity",
                "duration": "duration", "durationOrNever": "duration or Never", "awsRegion": "AWS region"}
X_FORMAT_NAMES = {"image-reference": "image reference"}


@dataclass
class Row:
    """One field of an object (or one shared format: its name, value and description), as table cells."""

    field: str
    type: str
    required: str
    default: str
    description: str


@dataclass
class Section:
    """One object of the file: where it is, what it says of itself, its fields."""

    path: str
    anchor: str
    depth: int
    properties: Schema
    required: list[str]
    paragraphs: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    also: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return code(self.path) if self.path else "Top level"


@dataclass(frozen=True)
class Expanded:
    """A schema with its $ref chain merged in; `format` is the shared format the chain stopped at."""

    schema: Schema
    format: str | None
    refs: frozenset[str]


class _Builder:
    """Walks the schema depth-first, in its order, into sections; each object once (keyed by the
    identity of its `properties`, so a shared $defs object or a $ref cycle ends in a link)."""

    def __init__(self, root: Schema, aliases: dict[str, Alias]) -> None:
        self.root = root
        self.aliases = aliases
        self.sections: list[Section] = []
        self.by_properties: dict[int, Section] = {}
        self.anchors: dict[str, str] = {}
        self.formats: dict[str, Schema] = {}

    def anchor(self, key: str) -> str:
        """A stable, unique anchor for a path (or `format:<name>`), e.g. models[].cache -> models-cache."""
        if key not in self.anchors:
            base = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "top-level"
            candidate, counter = base, 2
            while candidate in self.anchors.values():
                candidate, counter = f"{base}-{counter}", counter + 1
            self.anchors[key] = candidate
        return self.anchors[key]

    def lookup(self, ref: str) -> Schema | None:
        """The schema a local $ref (a JSON pointer after '#') names; None for any other."""
        node: Any = self.root if ref.startswith("#") else None
        for token in filter(None, ref[1:].split("/")):
            node = node.get(token.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else None

    def expand(self, schema: Any) -> Expanded:
        """Follow `schema`'s $refs, its own keys winning (a field's description over its definition's); a
        shared format ends the chain so that it is named, not spelled out."""
        merged: Schema = dict(schema) if isinstance(schema, dict) else {}
        refs: set[str] = set()
        while isinstance(merged.get("$ref"), str):
            ref = merged.pop("$ref")
            target = self.lookup(ref)
            if ref in refs or target is None:  # a cycle of bare references, or one outside the schema
                break
            refs.add(ref)
            if _is_format(ref, target):
                return Expanded(merged, ref, frozenset(refs))
            merged = {**target, **merged}
        return Expanded(merged, None, frozenset(refs))

    def object_within(self, expanded: Expanded) -> tuple[Schema | None, str]:
        """The object with fields a value holds, through lists ([]) and maps (.*), and the path suffix."""
        schema, seen, suffix = expanded.schema, set(expanded.refs), ""
        while not schema.get("properties"):
            if isinstance(schema.get("items"), dict):
                inner, suffix = self.expand(schema["items"]), suffix + "[]"
            elif isinstance(schema.get("additionalProperties"), dict):
                inner, suffix = self.expand(schema["additionalProperties"]), suffix + ".*"
            else:
                return None, suffix
            if inner.format is not None or inner.refs & seen:
                return None, suffix
            schema, seen = inner.schema, seen | inner.refs
        return schema, suffix

    def visit(self, path: str, depth: int, obj: Schema, paragraphs: list[str]) -> Section:
        """The section of object `obj` at `path`: made on the first visit, then only linked to."""
        known = self.by_properties.get(id(obj["properties"]))
        if known is not None:
            known.also.append(path)
            return known
        required = [str(name) for name in obj.get("required", [])]
        section = Section(path, self.anchor(path), depth, obj["properties"], required, list(paragraphs))
        self.by_properties[id(obj["properties"])] = section
        self.sections.append(section)
        hint = str(obj.get("x-hint", ""))
        if adds(hint, " ".join(paragraphs)):
            section.paragraphs.append(prose(f"Hint: {sentence(hint)}"))
        choices = _choices(obj)
        if choices:
            section.paragraphs.append(f"Give {next(iter(choices.values()))}.")
        if path in self.aliases:
            section.paragraphs.append(self.alias_paragraph(section, self.aliases[path]))
            return section
        for name, prop in obj["properties"].items():
            section.rows.append(self.row(section, str(name), prop, choices))
        return section

    def alias_paragraph(self, section: Section, alias: Alias) -> str:
        """An object whose fields are those of another (modelDefaults of models[]): named, not repeated."""
        path, others = alias
        names, only = (", ".join(code(name) for name in group) for group in (section.properties, others))
        required = ", ".join(code(name) for name in section.required) or "none"
        return (f"Same fields as [{code(path)}](#{self.anchor(path)}), with the types, defaults and meanings "
                f"given there: {names}. Required here: {required}. Only in {code(path)}: {only}.")

    def row(self, section: Section, name: str, prop: Any, choices: dict[str, str]) -> Row:
        expanded = self.expand(prop)
        schema = expanded.schema
        path = f"{section.path}.{name}" if section.path else name
        shown = code(name)
        target, suffix = self.object_within(expanded)
        if target is not None:
            # The field's description and, for a list or map of objects, what each object says of itself.
            intro = [prose(str(text)) for text in dict.fromkeys((schema.get("description"),
                                                                 target.get("description"))) if text]
            child = self.visit(path + suffix, section.depth + 1, target, intro)
            shown = f"[{code(name)}](#{child.anchor})"
        required = "yes" if name in section.required else choices.get(name, "no")
        default = literal(schema["default"], bare=True) if "default" in schema else ""
        return Row(shown, cell(self.type_text(expanded)), cell(required), cell(default),
                   cell(self.description(schema)))

    def description(self, schema: Schema) -> str:
        """The field's description, and the hints (its own, its items', its map's) that add to it."""
        description = str(schema.get("description", ""))
        parts = [prose(description)] if description else []
        hints = [("Hint", schema.get("x-hint"))]
        names = schema.get("propertyNames")
        if isinstance(names, dict):
            keys = names.get("x-hint") or (f"match `{names['pattern']}`" if "pattern" in names else None)
            hints.append(("Keys", keys))
        for key, label in (("items", "Hint"), ("additionalProperties", "Values")):
            inner = self.expand(schema.get(key))
            if inner.format is None and not inner.schema.get("properties"):
                hints.append((label, inner.schema.get("x-hint")))
        for label, hint in hints:
            if isinstance(hint, str) and adds(hint, description):
                parts.append(prose(f"{label}: {sentence(hint)}"))
        return " ".join(parts)

    def format_anchor(self, ref: str) -> str:
        return self.anchor("format:" + ref.rsplit("/", 1)[-1])

    def format_link(self, ref: str) -> str:
        self.formats.setdefault(ref, self.lookup(ref) or {})
        return f"[{_format_name(ref)}](#{self.format_anchor(ref)})"

    def type_text(self, expanded: Expanded, *, patterns: bool = False) -> str:
        """A readable type: a named format, an enum, bounds, list of ..., map of ... → ..."""
        schema = expanded.schema
        if expanded.format is not None:
            return self.format_link(expanded.format)
        if "const" in schema:
            return literal(schema["const"])
        if isinstance(schema.get("enum"), list):
            return " | ".join(literal(value) for value in schema["enum"])
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if isinstance(alternatives, list) and not _choices(schema):
            return "one of: " + "; ".join(self.inner(expanded, alt) for alt in alternatives)
        kinds = schema.get("type")
        if not isinstance(kinds, list):
            kinds = [kinds] if isinstance(kinds, str) else [_implied_type(schema)]
        return " or ".join(self.kind_text(expanded, str(kind), patterns) for kind in kinds)

    def inner(self, outer: Expanded, schema: Any) -> str:
        """The type of a part (items, map values, alternatives); a $ref back to an enclosing one is named."""
        expanded = self.expand(schema)
        looped = expanded.refs & outer.refs
        if looped:
            return code(min(looped).rsplit("/", 1)[-1])
        nested = Expanded(expanded.schema, expanded.format, expanded.refs | outer.refs)
        return "object" if expanded.schema.get("properties") else self.type_text(nested)

    def kind_text(self, expanded: Expanded, kind: str, patterns: bool) -> str:
        schema = expanded.schema
        if kind == "string":
            name = str(schema.get("x-format", "string"))
            text = X_FORMAT_NAMES.get(name, name)
            if "pattern" in schema and (patterns or not schema.get("x-hint")):
                text += f" matching {code(str(schema['pattern']))}"
            return text + _parens(_count(schema, "minLength", "maxLength", "character"))
        if kind in ("integer", "number"):
            return kind + _bounds(schema)
        if kind == "array":
            items = self.inner(expanded, schema["items"]) if isinstance(schema.get("items"), dict) else "any"
            limits = _parens(_count(schema, "minItems", "maxItems", "item"),
                             "no duplicates" if schema.get("uniqueItems") else "")
            return f"list of {'objects' if items == 'object' else group(items)}{limits}"
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
            values = group(self.inner(expanded, schema["additionalProperties"]))
            return f"map of string → {values}" + _parens(_count(schema, "minProperties", "maxProperties", "entry"))
        return kind

    def format_rows(self) -> list[Row]:
        """The shared formats the fields named, in the order they were first named, with their patterns."""
        rows: list[Row] = []
        for ref, target in list(self.formats.items()):
            value = self.type_text(Expanded(target, None, frozenset({ref})), patterns=True)
            notes = [prose(sentence(str(target[key]), upper=True)) for key in ("description", "x-hint")
                     if key in target]
            name = f'<a id="{self.format_anchor(ref)}"></a>{_format_name(ref)}'
            rows.append(Row(cell(name), cell(value), "", "", cell(" ".join(notes))))
        return rows


def _is_format(ref: str, target: Schema) -> bool:
    """A shared value format: a $defs entry with a type but no description or fields of its own."""
    return (ref.startswith("#/$defs/") and "description" not in target and "$ref" not in target
            and not target.get("properties") and ("type" in target or "enum" in target)
            and target.get("type") not in ("object", "array"))


def _format_name(ref: str) -> str:
    name = ref.rsplit("/", 1)[-1]
    return FORMAT_NAMES.get(name) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()


def _implied_type(schema: Schema) -> str:
    """The type a schema without `type` evidently has."""
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    return "array" if "items" in schema else "any"


def _bounds(schema: Schema) -> str:
    low = next(((op, schema[key]) for key, op in (("minimum", "≥"), ("exclusiveMinimum", ">")) if key in schema), None)
    high = next(((op, schema[key]) for key, op in (("maximum", "≤"), ("exclusiveMaximum", "<")) if key in schema), None)
    if low and high and low[0] == "≥" and high[0] == "≤":
        return f" from {number(low[1])} to {number(high[1])}"
    return "".join(f"{',' if index else ''} {op} {number(value)}"
                   for index, (op, value) in enumerate(bound for bound in (low, high) if bound))


def _count(schema: Schema, low_key: str, high_key: str, noun: str) -> str:
    """A size constraint in words: "1 to 30 items", "at most 63 characters"."""
    low, high = schema.get(low_key), schema.get(high_key)
    plural = "entries" if noun == "entry" else noun + "s"
    if low is not None and high is not None:
        return f"{number(low)} to {number(high)} {plural}"
    if high is not None or low:
        words, value = ("at most", high) if high is not None else ("at least", low)
        return f"{words} {number(value)} {noun if value == 1 else plural}"
    return ""


def _parens(*notes: str) -> str:
    shown = ", ".join(note for note in notes if note)
    return f" ({shown})" if shown else ""


def _choices(obj: Schema) -> dict[str, str]:
    """Fields an object needs one (oneOf) or at least one (anyOf) of, each mapped to that rule in words."""
    for key, words in (("oneOf", "exactly one of"), ("anyOf", "at least one of")):
        branches = obj.get(key)
        if isinstance(branches, list) and branches and all(
                isinstance(branch, dict) and isinstance(branch.get("required"), list) for branch in branches):
            groups = [[str(name) for name in branch["required"]] for branch in branches]
            rule = f"{words} " + " or ".join(" and ".join(code(name) for name in group) for group in groups)
            return {name: rule for group in groups for name in group}
    return {}


def _aliases(sections: list[Section]) -> dict[str, Alias]:
    """Objects whose every field is, schema for schema, a field of a larger object (modelDefaults of
    models[]), mapped to the largest such object: they are described by reference to it."""
    aliases: dict[str, Alias] = {}
    for small in sections:
        if len(small.properties) < 2:
            continue
        larger = [big for big in sections
                  if len(big.properties) > len(small.properties) and not _nested(small.path, big.path)
                  and all(big.properties.get(name) == prop for name, prop in small.properties.items())]
        if larger:
            big = max(larger, key=lambda big: len(big.properties))
            aliases[small.path] = (big.path, [name for name in big.properties if name not in small.properties])
    return aliases


def _nested(one: str, other: str) -> bool:
    """Whether one object holds the other (the top level holds every one)."""
    return not one or not other or one.startswith(other) or other.startswith(one)


def _build(schema: Schema, aliases: dict[str, Alias]) -> _Builder:
    builder = _Builder(schema, aliases)
    top = builder.expand(schema).schema
    if top.get("properties"):
        intro = [prose(str(top["description"]))] if top.get("description") else []
        builder.visit("", 0, top, intro)
    return builder


def reference_markdown(schema: dict[str, Any]) -> str:
    """The field reference of an environment file whose JSON Schema is `schema`, as Markdown."""
    # Two passes: the first finds the objects that repeat another's fields, the second links them to it.
    builder = _build(schema, _aliases(_build(schema, {}).sections))
    formats_anchor = builder.anchor("Value formats")
    for section in builder.sections:
        if section.also:
            section.paragraphs.append("Also at: " + ", ".join(code(path) for path in section.also) + ".")
    text = render_text("reference.md.j2", source=SOURCE, command=COMMAND, sections=builder.sections,
                       formats=builder.format_rows(), formats_anchor=formats_anchor)
    return text.rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the reference, or write it to a file (only when it changed, so its date stays put)."""
    parser = argparse.ArgumentParser(prog="python -m nimgen.environment.reference",
                                     description="Markdown reference of the environment file's fields.")
    parser.add_argument("--write", metavar="PATH", type=Path, help="write the reference to PATH")
    args = parser.parse_args(argv)
    text = reference_markdown(environment_schema())
    target: Path | None = args.write
    if target is None:
        sys.stdout.write(text)
    elif target.is_file() and target.read_text(encoding="utf-8") == text:
        print(f"{target} is up to date")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
