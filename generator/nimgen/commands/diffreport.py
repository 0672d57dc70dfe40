"""Reports of `nimgen diff`: text for terminals, JSON for tools, Markdown sized for a pull-request comment.

Data and change lines are built here; the layout of tables and summaries lives in templates/diff-*.j2.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from dataclasses import asdict
from typing import Any

from nimgen.commands.diff import SIGNS, Diff, FieldChange, ObjectChange
from nimgen.commands.plan import ModelPlan, Plan, PoolPlan
from nimgen.templating import render_text
from nimgen.yamlio import dump

COMMENT_LIMIT = 65_536  # GitHub's maximum comment length, in characters
MAX_TABLE_ROWS = 50  # keeps the Markdown summary bounded however many models change


def signed_range(low: float, high: float, unit: str = "", digits: int = 0) -> str:
    """"+8..16", "-$1.21..6.06", "+2", "0", "+1..-1": one sign for the pair when both share it."""
    sign, text = {True: "-", False: "+"}, [f"{abs(value):.{digits}f}" for value in (low, high)]
    if low == high:
        return f"{sign[low < 0] if low else ''}{unit}{text[0]}"
    if (low < 0) == (high < 0) or 0 in (low, high):
        return f"{sign[min(low, high) < 0]}{unit}{text[0]}..{text[1]}"
    return f"{sign[low < 0]}{unit}{text[0]}..{sign[high < 0]}{text[1]}"


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


def _range(row: ModelPlan | PoolPlan | Plan | None) -> dict[str, Any]:
    """GPUs and On-Demand $/h at min-max replicas: zero without a row, $/h None when a price is unknown."""
    if row is None:
        return {"gpus": {"min": 0, "max": 0}, "on_demand_usd_per_hour": {"min": 0.0, "max": 0.0}}
    low, high = row.on_demand_usd_min, row.on_demand_usd_max
    return {"gpus": {"min": row.gpus_min, "max": row.gpus_max},
            "on_demand_usd_per_hour": None if low is None or high is None else {"min": low, "max": high}}


def _delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    usd = (old["on_demand_usd_per_hour"], new["on_demand_usd_per_hour"])
    return {"gpus": {end: new["gpus"][end] - old["gpus"][end] for end in ("min", "max")},
            "on_demand_usd_per_hour": None if None in usd else {end: round(usd[1][end] - usd[0][end], 2)
                                                                for end in ("min", "max")}}


def summary(result: Diff) -> dict[str, Any]:
    """The summary as plain data: what `--format json` prints and the templates lay out."""
    def sides(old: Any, new: Any) -> dict[str, Any]:
        return {"before": asdict(old) if old else None, "after": asdict(new) if new else None,
                "delta": _delta(_range(old), _range(new))}

    totals = {"before": _range(result.before.plan), "after": _range(result.after.plan)}
    old = {row.pool: row for row in result.before.plan.pools} if result.before.plan else {}
    new = {row.pool: row for row in result.after.plan.pools} if result.after.plan else {}
    data = {
        "models": [{"name": m.name, "change": m.change, "others": list(m.others),
                    "image": {"before": m.images[0] or None, "after": m.images[1] or None},
                    **sides(m.before, m.after)}
                   for m in result.models],
        "pools": [{"pool": name, **sides(old.get(name), new.get(name))}
                  for name in sorted(old.keys() | new.keys())],
        "totals": {**totals, "delta": _delta(totals["before"], totals["after"])},
        "objects": {**{kind: sum(item.change == kind for item in result.objects)
                       for kind in ("added", "changed", "removed")}, "unchanged": result.unchanged},
        "not_rendered_offline": sorted(result.before.external | result.after.external),
    }
    new_or_gone = "new environment: " if result.before.env is None else "environment removed: " if \
        result.after.env is None else ""
    return {"headline": new_or_gone + headline(data), **data}


def headline(data: dict[str, Any]) -> str:
    """The whole change in one line, e.g. "+1 model, +8..16 GPUs, +$55.04..110.08/h"."""
    counts = [(sum(m["change"] == change for m in data["models"]), text) for change, text in
              (("added", "+{} model{}"), ("removed", "-{} model{}"), ("changed", "{} model{} changed"))]
    parts = [text.format(count, "" if count == 1 else "s") for count, text in counts if count]
    parts = parts or ["no model changes"]
    gpus, usd = data["totals"]["delta"]["gpus"], data["totals"]["delta"]["on_demand_usd_per_hour"]
    unit = "GPU" if gpus["min"] == gpus["max"] and abs(gpus["min"]) == 1 else "GPUs"
    parts.append(f"{signed_range(gpus['min'], gpus['max'])} {unit}" if gpus["min"] or gpus["max"]
                 else "GPUs unchanged")
    parts.append("$/h unknown (a price is not in the catalog)" if usd is None else "$/h unchanged"
                 if not (usd["min"] or usd["max"]) else f"{signed_range(usd['min'], usd['max'], '$', 2)}/h")
    return ", ".join(parts)


def _table(text: str) -> str:
    """Align tab-separated lines into columns."""
    rows = [line.split("\t") for line in text.strip("\n").splitlines()]
    widths = [max(len(row[i]) if i < len(row) else 0 for row in rows) for i in range(max(map(len, rows)))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def _render(template: str, result: Diff, **extra: Any) -> str:
    env, base = result.after.env or result.before.env, result.base
    return render_text(template, result=result, summary=summary(result), name=env.name if env else "",
                       base=base.short, base_label="" if base.label == base.commit else base.label,
                       signs=SIGNS, signed=signed_range, table=_table, lines=object_lines,
                       max_rows=MAX_TABLE_ROWS, **extra)


def as_text(result: Diff) -> str:
    """The report for a terminal: summary, tables, then every object change in full."""
    return _render("diff-text.j2", result)


def _details(item: ObjectChange) -> str:
    body = "\n".join(object_lines(item))
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", body)), default=0))
    title = html.escape(f"{SIGNS[item.change]} {item.change}: {item.key}")
    return f"<details><summary>{title}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n"


def as_markdown(result: Diff, limit: int = COMMENT_LIMIT) -> str:
    """A PR comment: the whole summary, then per-object details while they fit in `limit` characters."""
    head = _render("diff-summary.md.j2", result)
    command = f"nimgen diff {result.file} --format text"
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
    """Summary, objects and field changes for machines (stable order)."""
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
            "summary": summary(result), "objects": objects}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
