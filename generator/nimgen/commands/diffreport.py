"""Reports of `nimgen diff`: text for terminals, JSON for tools, Markdown sized for a pull-request comment.

Data and change lines are built here; the layout of tables and summaries lives in templates/diff-*.j2.
Ranges read `lo..hi`; a change shows old→new on each bound that changes, and names the bounds then.
JSON keys are camelCase, like Kubernetes objects and the environment file.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import click

from nimgen.commands.diff import SIGNS, Diff, FieldChange, ObjectChange
from nimgen.commands.diffeffects import Replacement
from nimgen.commands.plan import EndpointPlan, ModelPlan, Plan, PoolPlan
from nimgen.jsonreport import camel
from nimgen.templating import render_text
from nimgen.yamlio import dump

COMMENT_LIMIT = 65_536  # GitHub's maximum comment length, in characters
MAX_TABLE_ROWS = 50  # keeps the Markdown summary bounded however many models change
# Colours of the text report on a terminal, like git and terraform.
STYLES: dict[str, dict[str, Any]] = {
    "added": {"fg": "green"}, "removed": {"fg": "red"}, "changed": {"fg": "yellow"},
    "heading": {"bold": True},
    "replaces the object": {"fg": "red", "bold": True}, "replaces nodes": {"fg": "red", "bold": True},
    "restarts pods": {"fg": "yellow", "bold": True},
}
_SIGNED = {sign: change for change, sign in SIGNS.items()}


def _figure(value: float | None, digits: int) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def span(low: float | None, high: float | None, digits: int = 0) -> str:
    """A range as `lo..hi`, one figure when both are equal: "2..5", "8", "1.21..3.63", "unknown"."""
    low_text, high_text = _figure(low, digits), _figure(high, digits)
    return low_text if low_text == high_text else f"{low_text}..{high_text}"


def between(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, name: str, digits: int = 0) -> str:
    """`name`Min..`name`Max from old to new, with old→new on each bound that changes and only there.

    "2..5" (unchanged, or one side only), "8→16" (one figure each side), "min 1→2, max 5" and
    "min 1→2, max 5→3": the bounds are named as soon as one changes, so an arrow never reads as a range's.
    """
    if old is None or new is None:
        row = new if new is not None else old
        return "" if row is None else span(row[f"{name}Min"], row[f"{name}Max"], digits)
    low, high, new_low, new_high = (_figure(row[f"{name}{end}"], digits)
                                    for row in (old, new) for end in ("Min", "Max"))
    if (low, high) == (new_low, new_high):
        return low if low == high else f"{low}..{high}"
    if low == high and new_low == new_high:
        return f"{low}→{new_low}"
    bounds = [text if text == now else f"{text}→{now}" for text, now in ((low, new_low), (high, new_high))]
    return f"min {bounds[0]}, max {bounds[1]}"


_AMBIGUOUS = re.compile(r"-?[0-9][0-9_.eE+-]*|true|false|yes|no|on|off|null|~", re.IGNORECASE)


def _inline(value: Any) -> str | None:
    """One-line form of a value (strings unquoted unless ambiguous), or None when it needs a block."""
    if isinstance(value, str):
        plain = value and value == value.strip() and " -> " not in value and not _AMBIGUOUS.fullmatch(value)
        return None if "\n" in value else value if plain else json.dumps(value, ensure_ascii=False)
    return None if isinstance(value, (dict, list)) and value else json.dumps(value, default=str)


def _block(sign: str, path: str, value: Any) -> list[str]:
    inline = _inline(value)
    if inline is not None:
        return [f"{sign} {path}: {inline}"]
    text = value if isinstance(value, str) else dump(value)
    indent = "  " if path else ""
    return ([f"{sign} {path}:"] if path else []) + [f"{sign} {indent}{line}" for line in text.splitlines()]


def change_lines(item: FieldChange, *, arrows: bool = False) -> list[str]:
    """Diff-style lines ('-' old, '+' new); with `arrows`, a scalar change reads `~ path: a -> b`."""
    if item.change != "changed":
        return _block(SIGNS[item.change], item.path, item.after if item.change == "added" else item.before)
    if isinstance(item.before, str) and isinstance(item.after, str) and "\n" in item.before + item.after:
        lines = difflib.unified_diff(item.before.splitlines(), item.after.splitlines(), lineterm="", n=2)
        return [f"~ {item.path}:"] + [f"{line[0]}   {line[1:]}" if line[:1] in "+- " else f"    {line}"
                                      for line in list(lines)[2:]]
    old, new = _inline(item.before), _inline(item.after)
    if arrows and old is not None and new is not None:
        return [f"~ {item.path}: {old} -> {new}"]
    return _block("-", item.path, item.before) + _block("+", item.path, item.after)


def object_lines(item: ObjectChange, arrows: bool = False) -> list[str]:
    """A changed object's field changes, or the whole object added or removed."""
    if item.change == "changed":
        return [line for change in item.fields for line in change_lines(change, arrows=arrows)]
    return _block(SIGNS[item.change], "", item.after if item.change == "added" else item.before)


FIGURES = ("gpusMin", "gpusMax", "onDemandUsdMin", "onDemandUsdMax")


def _camel(row: ModelPlan | PoolPlan | None) -> dict[str, Any] | None:
    """A plan row with camelCase keys (`gpus_min` -> `gpusMin`)."""
    return None if row is None else {camel(key): value for key, value in asdict(row).items()}


def _figures(row: ModelPlan | PoolPlan | Plan | None) -> dict[str, Any]:
    """GPUs and On-Demand $/h at min and max replicas: zero without a row, a price None when unknown."""
    if row is None:
        return {"gpusMin": 0, "gpusMax": 0, "onDemandUsdMin": 0.0, "onDemandUsdMax": 0.0}
    return dict(zip(FIGURES, (row.gpus_min, row.gpus_max, row.on_demand_usd_min, row.on_demand_usd_max)))


def _delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """new - old for each figure (cents for prices; GPU counts are whole and stay so); None where either side is
    unknown."""
    return {key: None if old[key] is None or new[key] is None else round(new[key] - old[key], 2) for key in FIGURES}


def _replacement(item: Replacement) -> dict[str, Any]:
    return {**asdict(item.key), "effect": item.effect, "reason": item.reason, "fields": list(item.fields)}


def summary(result: Diff) -> dict[str, Any]:
    """The summary as plain data (camelCase keys): what `--output json` prints and the templates lay out."""
    def sides(old: ModelPlan | PoolPlan | None, new: ModelPlan | PoolPlan | None) -> dict[str, Any]:
        return {"before": _camel(old), "after": _camel(new), "delta": _delta(_figures(old), _figures(new))}

    totals = {"before": _figures(result.before.plan), "after": _figures(result.after.plan)}
    old = {row.pool: row for row in result.before.plan.pools} if result.before.plan else {}
    new = {row.pool: row for row in result.after.plan.pools} if result.after.plan else {}
    data: dict[str, Any] = {
        "replacements": [_replacement(item) for item in result.replacements],
        "models": [{"name": m.name, "change": m.change, "others": list(m.others),
                    "image": {"before": m.images[0] or None, "after": m.images[1] or None},
                    **sides(m.before, m.after)}
                   for m in result.models],
        "pools": [{"pool": name, **sides(old.get(name), new.get(name))}
                  for name in sorted(old.keys() | new.keys())],
        "totals": {**totals, "delta": _delta(totals["before"], totals["after"])},
        "objects": {**{kind: sum(item.change == kind for item in result.objects)
                       for kind in ("added", "changed", "removed")}, "unchanged": result.unchanged},
        "notRenderedOffline": sorted(result.before.external | result.after.external),
    }
    data["endpoint"] = _endpoint(result.before.plan.endpoint if result.before.plan else None,
                                 result.after.plan.endpoint if result.after.plan else None)
    new_or_gone = "new environment: " if result.before.env is None else "environment removed: " if \
        result.after.env is None else ""
    return {"headline": new_or_gone + headline(data), **data}


def _endpoint(old: EndpointPlan | None, new: EndpointPlan | None) -> dict[str, Any] | None:
    """The gateway's endpoint on both sides and each model whose public names or access change; None without one."""
    if old is None and new is None:
        return None

    def side(endpoint: EndpointPlan | None) -> dict[str, Any] | None:
        return None if endpoint is None else {"url": endpoint.url, "scheme": endpoint.scheme,
                                              "authentication": endpoint.authentication}

    def routes(endpoint: EndpointPlan | None) -> dict[str, dict[str, Any]]:
        return {r.model: {"names": list(r.names), "public": r.public} for r in (endpoint.routes if endpoint else ())}

    before, after = routes(old), routes(new)
    changed = [{"model": model, "change": "added" if model not in before else "removed" if model not in after
                else "changed", "before": before.get(model), "after": after.get(model)}
               for model in sorted(before.keys() | after.keys()) if before.get(model) != after.get(model)]
    return {"before": side(old), "after": side(new), "routes": changed}


def headline(data: dict[str, Any]) -> str:
    """The whole change in one line: "+1 model; min 10→12, max 29→32 GPUs; $/h min 12.10→14.52, max 35.09"."""
    counts = [(sum(m["change"] == change for m in data["models"]), text) for change, text in
              (("added", "+{} model{}"), ("removed", "-{} model{}"), ("changed", "{} model{} changed"))]
    models = ", ".join(text.format(count, "" if count == 1 else "s") for count, text in counts if count)
    old, new = data["totals"]["before"], data["totals"]["after"]
    gpus, usd = between(old, new, "gpus"), between(old, new, "onDemandUsd", 2)
    return "; ".join([
        models or "no model changes",
        f"{gpus} GPUs" if "→" in gpus else "GPUs unchanged",
        "$/h unknown (a price is not in the catalog)" if None in (*old.values(), *new.values()) else
        f"$/h {usd}" if "→" in usd else "$/h unchanged",
    ])


def _table(text: str) -> str:
    """Align tab-separated lines into columns (by their visible width: cells may carry colour)."""
    rows = [line.split("\t") for line in text.strip("\n").splitlines()]
    sizes = [[len(click.unstyle(cell)) for cell in row] for row in rows]
    widths = [max(row[i] if i < len(row) else 0 for row in sizes) for i in range(max(map(len, rows)))]
    return "\n".join("  ".join(cell + " " * (width - size) for cell, size, width in zip(row, row_sizes, widths))
                     .rstrip() for row, row_sizes in zip(rows, sizes))


def _fields(item: Mapping[str, Any]) -> str:
    """The fields of a warning in one cell: the first, and how many more."""
    fields: list[str] = item["fields"]
    if not fields:
        return "(deleted)"
    return fields[0] + (f" (+{len(fields) - 1} more)" if len(fields) > 1 else "")


def _render(template: str, result: Diff, paint: Callable[[str, str], str] | None = None) -> str:
    env, base = result.after.env or result.before.env, result.base
    return render_text(template, result=result, summary=summary(result), name=env.name if env else "",
                       base=base.short, base_label="" if base.label == base.commit else base.label,
                       signs=SIGNS, between=between, table=_table, lines=object_lines, fields=_fields,
                       paint=paint or (lambda text, _style: text), max_rows=MAX_TABLE_ROWS)


def _painter(color: bool) -> Callable[[str, str], str]:
    """paint(text, style): the text in the style's colour (see STYLES), or as it is without colour.

    The style "line" colours a diff line by its sign: + green, - red, ~ yellow.
    """
    def paint(text: str, style: str) -> str:
        if style == "line":
            style = _SIGNED.get(text[:1], "")
        return click.style(text, **STYLES[style]) if color and text and style in STYLES else text

    return paint


def as_text(result: Diff, *, color: bool = False) -> str:
    """The report for a terminal: summary, warnings, tables, then every object change in full.

    With `color`, additions are green, removals red, changes yellow and headings bold (ANSI escapes).
    """
    return _render("diff-text.j2", result, _painter(color))


def _details(item: ObjectChange) -> str:
    body = "\n".join(object_lines(item))
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", body)), default=0))
    title = html.escape(f"{SIGNS[item.change]} {item.change}: {item.key}")
    return f"<details><summary>{title}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n"


def as_markdown(result: Diff, limit: int = COMMENT_LIMIT) -> str:
    """A PR comment: the whole summary, then per-object details while they fit in `limit` characters."""
    head = _render("diff-summary.md.j2", result)
    command = f"nimgen diff {result.file} --output text"
    command += "" if result.base.label.startswith("merge base") else f" --base {result.base.label}"

    def note(count: int) -> str:
        return (f"\n_Details of {count} object{'s' if count != 1 else ''} left out to stay under {limit:,} "
                f"characters; run `{command}` to see them all._\n")

    budget, blocks, left_out = limit - len(head) - len(note(len(result.objects))), [], 0
    for block in map(_details, result.objects):
        if len(block) <= budget:
            blocks.append(block)
            budget -= len(block)
        else:
            left_out += 1
    return head + "".join(blocks) + (note(left_out) if left_out else "")


def as_json(result: Diff) -> str:
    """Whether anything changes, the summary, objects and field changes (camelCase keys, stable order)."""
    kept = {"added": {"path", "change", "after"}, "removed": {"path", "change", "before"}}
    objects = [{"change": item.change, **asdict(item.key), "application": item.application,
                "fields": [{key: value for key, value in asdict(change).items()
                            if key in kept.get(change.change, {"path", "change", "before", "after"})}
                           for change in item.fields],
                **({"object": item.after or item.before} if item.change != "changed" else {})}
               for item in result.objects]
    data = {"file": result.file,
            "base": {"ref": result.base.label, "commit": result.base.commit,
                     "exists": result.before.env is not None},
            "environment": {"before": result.before.env.name if result.before.env else None,
                            "after": result.after.env.name if result.after.env else None},
            "changed": result.changed, "summary": summary(result), "objects": objects}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
