"""diff's summary and reports on hand-built results: exact numbers, signs, unknown prices, layout.

test_diff.py drives the whole command on git repositories; these tests pin each rule of the summary
directly (and fast), so that a wrong sum, sign or "unknown" fails here by name.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import click
import pytest
from nimgen.commands import diffreport
from nimgen.commands.diff import Diff, FieldChange, ModelChange, ObjectChange, ObjectKey, Side, field_changes
from nimgen.commands.plan import ModelPlan, Plan, PoolPlan
from nimgen.gitrefs import Base

BASE = Base("0123456789abcdef0123", "origin/main")


def _row(model: str, pool: str, gpus: tuple[int, int], usd: tuple[float | None, float | None]) -> ModelPlan:
    return ModelPlan(model, pool, "g5.xlarge", "A10G", 1, gpus[0], gpus[1], 10.0, 24.0, gpus[0], gpus[1],
                     usd[0], usd[1], None, None)


def _plan(*rows: ModelPlan, pools: tuple[PoolPlan, ...] = ()) -> Plan:
    return Plan("e", "us-east-1", rows, pools)


def _diff(before: Plan | None, after: Plan | None, models: tuple[ModelChange, ...] = (),
          objects: tuple[ObjectChange, ...] = (), unchanged: int = 0, base: Base = BASE) -> Diff:
    class _Env:  # only the name of each side's environment is read by the reports
        name = "e"

    return Diff("environments/e.yaml", base, Side(_Env() if before else None, before),  # type: ignore[arg-type]
                Side(_Env() if after else None, after), models, objects, unchanged)  # type: ignore[arg-type]


A = _row("a", "a10g", (1, 2), (1.0, 2.0))
B = _row("b", "a10g", (2, 4), (3.5, 7.0))
POOL_OLD = PoolPlan("a10g", 1, 2, 8, 1.0, 2.0)
POOL_NEW = PoolPlan("a10g", 3, 6, 8, 4.5, 9.0)


@pytest.mark.parametrize(("low", "high", "digits", "text"), [
    (0, 0, 0, "0"), (2, 5, 0, "2..5"), (8, 8, 0, "8"), (1.21, 3.63, 2, "1.21..3.63"), (1.5, 1.5, 2, "1.50"),
    (None, None, 2, "unknown"), (1.0, None, 2, "1.00..unknown"), (1.004, 1.001, 2, "1.00"),
])
def test_span(low: float | None, high: float | None, digits: int, text: str) -> None:
    assert diffreport.span(low, high, digits) == text


def _bounds(low: float | None, high: float | None) -> dict[str, float | None]:
    return {"gpusMin": low, "gpusMax": high}


@pytest.mark.parametrize(("old", "new", "digits", "text"), [
    ((1, 5), (1, 5), 0, "1..5"),  # unchanged: the range
    ((8, 8), (8, 8), 0, "8"),
    (None, (2, 3), 0, "2..3"),  # one side only: that side's range
    ((2, 3), None, 0, "2..3"),
    ((1, 5), (2, 3), 0, "min 1→2, max 5→3"),  # both bounds change
    ((1, 5), (2, 5), 0, "min 1→2, max 5"),  # one bound: an arrow only there, the bounds named
    ((1, 5), (1, 3), 0, "min 1, max 5→3"),
    ((8, 8), (16, 16), 0, "8→16"),  # one figure each side
    ((1, 1), (1, 2), 0, "min 1, max 1→2"),
    ((1.21, 3.63), (2.42, 3.63), 2, "min 1.21→2.42, max 3.63"),
    ((1.0, 2.0), (1.001, 2.0), 2, "1.00..2.00"),  # equal as shown
    ((1.0, 2.0), (None, None), 2, "min 1.00→unknown, max 2.00→unknown"),
    ((None, None), (None, None), 2, "unknown"),
])
def test_between(old: tuple[float | None, float | None] | None, new: tuple[float | None, float | None] | None,
                 digits: int, text: str) -> None:
    assert diffreport.between(old and _bounds(*old), new and _bounds(*new), "gpus", digits) == text
    assert diffreport.between(None, None, "gpus") == ""


def test_summary_sums_every_model_and_pool_and_signs_the_delta() -> None:
    result = _diff(_plan(A, pools=(POOL_OLD,)), _plan(A, B, pools=(POOL_NEW,)),
                   models=(ModelChange("b", "added", None, B, ("", "img:2")),))
    data = diffreport.summary(result)
    assert data["headline"] == "+1 model; min 1→3, max 2→6 GPUs; $/h min 1.00→4.50, max 2.00→9.00"
    assert data["totals"] == {
        "before": {"gpusMin": 1, "gpusMax": 2, "onDemandUsdMin": 1.0, "onDemandUsdMax": 2.0},
        "after": {"gpusMin": 3, "gpusMax": 6, "onDemandUsdMin": 4.5, "onDemandUsdMax": 9.0},
        "delta": {"gpusMin": 2, "gpusMax": 4, "onDemandUsdMin": 3.5, "onDemandUsdMax": 7.0},
    }
    [model] = data["models"]
    assert model["name"] == "b" and model["change"] == "added" and model["others"] == []
    assert model["image"] == {"before": None, "after": "img:2"}
    assert model["before"] is None and model["after"]["gpusMax"] == 4
    assert list(model["after"])[:5] == ["model", "pool", "instance", "gpu", "gpusPerReplica"]
    assert model["delta"] == {"gpusMin": 2, "gpusMax": 4, "onDemandUsdMin": 3.5, "onDemandUsdMax": 7.0}
    [pool] = data["pools"]
    assert pool["pool"] == "a10g" and pool["before"]["gpuLimit"] == 8
    assert pool["delta"] == {"gpusMin": 2, "gpusMax": 4, "onDemandUsdMin": 3.5, "onDemandUsdMax": 7.0}
    assert data["objects"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
    assert data["notRenderedOffline"] == [] and data["replacements"] == []


def test_an_unknown_price_on_either_side_is_unknown_never_zero() -> None:
    unpriced = _row("c", "h200", (8, 8), (None, None))
    for before, after in ((_plan(A), _plan(A, unpriced)), (_plan(A, unpriced), _plan(A))):
        data = diffreport.summary(_diff(before, after))
        assert data["totals"]["delta"] == {"gpusMin": 8 if after.models[1:] else -8,
                                           "gpusMax": 8 if after.models[1:] else -8,
                                           "onDemandUsdMin": None, "onDemandUsdMax": None}
        assert data["headline"].endswith("; $/h unknown (a price is not in the catalog)")
    one_sided = _row("d", "a10g", (1, 1), (1.0, None))
    data = diffreport.summary(_diff(_plan(A), _plan(A, one_sided)))
    assert (data["totals"]["after"]["onDemandUsdMin"], data["totals"]["after"]["onDemandUsdMax"]) == (2.0, None)
    assert (data["totals"]["delta"]["onDemandUsdMin"], data["totals"]["delta"]["onDemandUsdMax"]) == (1.0, None)
    assert data["headline"].endswith("; $/h unknown (a price is not in the catalog)")


def test_a_side_without_a_plan_counts_as_zero() -> None:
    data = diffreport.summary(_diff(None, _plan(A, pools=(POOL_OLD,))))
    assert data["headline"] == \
        "new environment: no model changes; min 0→1, max 0→2 GPUs; $/h min 0.00→1.00, max 0.00→2.00"
    assert data["totals"]["before"] == {"gpusMin": 0, "gpusMax": 0, "onDemandUsdMin": 0.0, "onDemandUsdMax": 0.0}
    assert data["pools"][0]["before"] is None
    gone = diffreport.summary(_diff(_plan(A), None))
    assert gone["headline"] == \
        "environment removed: no model changes; min 1→0, max 2→0 GPUs; $/h min 1.00→0.00, max 2.00→0.00"


@pytest.mark.parametrize(("models", "plans", "headline"), [
    ((), (_plan(A), _plan(A)), "no model changes; GPUs unchanged; $/h unchanged"),
    ((ModelChange("b", "removed", B, None, ("x", "")),), (_plan(A, B), _plan(A)),
     "-1 model; min 3→1, max 6→2 GPUs; $/h min 4.50→1.00, max 9.00→2.00"),
    ((ModelChange("a", "added", None, A, ("", "x")), ModelChange("b", "added", None, B, ("", "x"))),
     (_plan(), _plan(A, B)), "+2 models; min 0→3, max 0→6 GPUs; $/h min 0.00→4.50, max 0.00→9.00"),
    ((ModelChange("a", "changed", A, A, ("x", "y")),), (_plan(A), _plan(A)),
     "1 model changed; GPUs unchanged; $/h unchanged"),
    ((ModelChange("a", "changed", A, A, ("x", "y")), ModelChange("b", "changed", B, B, ("x", "y"))),
     (_plan(A, B), _plan(A, B)), "2 models changed; GPUs unchanged; $/h unchanged"),
    ((ModelChange("a", "added", None, A, ("", "x")), ModelChange("b", "removed", B, None, ("x", "")),
      ModelChange("c", "changed", A, A, ("x", "y"))), (_plan(B, A), _plan(A, A)),
     "+1 model, -1 model, 1 model changed; min 3→2, max 6→4 GPUs; $/h min 4.50→2.00, max 9.00→4.00"),
    ((ModelChange("a", "changed", A, replace(A, gpus_min=2, gpus_max=2), ("x", "x")),),
     (_plan(A), _plan(replace(A, gpus_min=2, gpus_max=2))), "1 model changed; min 1→2, max 2 GPUs; $/h unchanged"),
    ((), (_plan(A), _plan(replace(A, gpus_min=2, gpus_max=3))),
     "no model changes; min 1→2, max 2→3 GPUs; $/h unchanged"),
    ((), (_plan(A), _plan(replace(A, gpus_min=1, gpus_max=4))), "no model changes; min 1, max 2→4 GPUs; $/h unchanged"),
    ((), (_plan(replace(A, gpus_min=8, gpus_max=8)), _plan(replace(A, gpus_min=16, gpus_max=16))),
     "no model changes; 8→16 GPUs; $/h unchanged"),
    ((), (_plan(A), _plan(replace(A, on_demand_usd_min=1.21))),
     "no model changes; GPUs unchanged; $/h min 1.00→1.21, max 2.00"),
])
def test_headline(models: tuple[ModelChange, ...], plans: tuple[Plan, Plan], headline: str) -> None:
    assert diffreport.summary(_diff(*plans, models=models))["headline"] == headline


def test_object_counts_and_external_charts() -> None:
    key = ObjectKey("ConfigMap", "nim", "x", "")
    objects = (ObjectChange(key, "added", "app", None, {"a": 1}),
               ObjectChange(replace(key, name="y"), "removed", "app", {"a": 1}, None),
               ObjectChange(replace(key, name="z"), "changed", "app", {"a": 1}, {"a": 2},
                            (FieldChange("a", "changed", 1, 2),)),
               ObjectChange(replace(key, name="w"), "added", "", None, {"b": 1}))
    result = _diff(_plan(A), _plan(A), objects=objects, unchanged=7)
    result.before.external.add("kps (kube-prometheus-stack 1.0)")
    result.after.external.update({"kps (kube-prometheus-stack 1.0)", "adapter (prometheus-adapter 2.0)"})
    data = diffreport.summary(result)
    assert data["objects"] == {"added": 2, "changed": 1, "removed": 1, "unchanged": 7}
    assert data["notRenderedOffline"] == ["adapter (prometheus-adapter 2.0)", "kps (kube-prometheus-stack 1.0)"]


def test_change_lines() -> None:
    assert diffreport.change_lines(FieldChange("a.b", "added", after="x")) == ["+ a.b: x"]
    assert diffreport.change_lines(FieldChange("a.b", "removed", before=3)) == ["- a.b: 3"]
    assert diffreport.change_lines(FieldChange("a", "changed", "x:1", "x:2")) == ["- a: x:1", "+ a: x:2"]
    assert diffreport.change_lines(FieldChange("a", "changed", "x:1", "x:2"), arrows=True) == ["~ a: x:1 -> x:2"]
    # Strings that read as another type, or with padding or an arrow, are quoted.
    assert diffreport.change_lines(FieldChange("a", "changed", "true", True), arrows=True) == ['~ a: "true" -> true']
    assert diffreport.change_lines(FieldChange("a", "changed", "1.0", " x"), arrows=True) == ['~ a: "1.0" -> " x"']
    assert diffreport.change_lines(FieldChange("a", "changed", "a -> b", ""), arrows=True) == ['~ a: "a -> b" -> ""']
    assert diffreport.change_lines(FieldChange("a", "changed", None, "~"), arrows=True) == ['~ a: null -> "~"']
    # Maps and lists become blocks; empty ones stay inline.
    assert diffreport.change_lines(FieldChange("m", "added", after={"k": [1]})) == ["+ m:", "+   k:", "+     - 1"]
    assert diffreport.change_lines(FieldChange("m", "changed", {}, {"k": 1}), arrows=True) == \
        ["- m: {}", "+ m:", "+   k: 1"]
    assert diffreport.change_lines(FieldChange("m", "changed", [], None), arrows=True) == ["~ m: [] -> null"]
    # Multi-line strings change as a unified diff of their lines.
    assert diffreport.change_lines(FieldChange("s", "changed", "a\nb\nc\n", "a\nB\nc\n")) == \
        ["~ s:", "    @@ -1,3 +1,3 @@", "    a", "-   b", "+   B", "    c"]
    assert diffreport.change_lines(FieldChange("s", "added", after="l1\nl2")) == ["+ s:", "+   l1", "+   l2"]


def test_object_lines() -> None:
    key = ObjectKey("Service", "nim", "a", "")
    assert diffreport.object_lines(ObjectChange(key, "added", "", None, {"kind": "Service"})) == ["+ kind: Service"]
    assert diffreport.object_lines(ObjectChange(key, "removed", "", {"kind": "Service"}, None)) == ["- kind: Service"]
    changed = ObjectChange(key, "changed", "", {"a": 1}, {"a": 2}, tuple(field_changes({"a": 1}, {"a": 2})))
    assert diffreport.object_lines(changed) == ["- a: 1", "+ a: 2"]
    assert diffreport.object_lines(changed, arrows=True) == ["~ a: 1 -> 2"]


def test_table_aligns_columns_and_trims_trailing_space() -> None:
    assert diffreport._table("A\tBB\tC\nxxx\ty\n") == "A    BB  C\nxxx  y"
    assert diffreport._table("\nONE\n") == "ONE"
    # A column of empty cells takes no width, and a leading X is text like any other.
    assert diffreport._table("a\t\tb\nc") == "a    b\nc"
    assert diffreport._table("X\ty\n") == "X  y"


def test_text_report() -> None:
    key = ObjectKey("Service", "nim", "b", "")
    objects = (ObjectChange(key, "changed", "b", {"a": 1}, {"a": 2}, (FieldChange("a", "changed", 1, 2),)),
               ObjectChange(ObjectKey("Application", "argocd", "b", "argoproj.io"), "added", "", None, {"k": 1}))
    result = _diff(_plan(A, pools=(POOL_OLD,)), _plan(A, B, pools=(POOL_NEW,)), objects=objects, unchanged=3,
                   models=(ModelChange("b", "added", None, B, ("", "img:2")),))
    result.after.external.add("kps (kube-prometheus-stack 1.0)")
    lines = diffreport.as_text(result).splitlines()
    assert lines[:2] == ["nimgen diff environments/e.yaml: base 0123456789ab (origin/main) → work tree",
                         "+1 model; min 1→3, max 2→6 GPUs; $/h min 1.00→4.50, max 2.00→9.00"]
    assert lines[3:10] == [
        "MODEL  CHANGE  POOL  GPUS/REPLICA  REPLICAS  IMAGE  GPUS  ON-DEMAND $/H",
        "b      added   a10g  1             2..4      img:2  2..4  3.50..7.00",
        "",
        "POOL   GPUS              GPU LIMIT  ON-DEMAND $/H",
        "a10g   min 1→3, max 2→6  8          min 1.00→4.50, max 2.00→9.00",
        "total  min 1→3, max 2→6             min 1.00→4.50, max 2.00→9.00",
        ""]
    assert "Kubernetes objects: 1 added, 1 changed, 0 removed, 3 unchanged" in lines
    assert lines.index("~ Service nim/b (from Application b)") + 1 == lines.index("    ~ a: 1 -> 2")
    assert "+ Application argocd/b (applied by hand)" in lines
    assert lines[-2:] == ["Not rendered offline (external charts; only their Applications are compared):",
                          "  kps (kube-prometheus-stack 1.0)"]
    same_label = _diff(_plan(A), _plan(A), base=Base("0123456789abcdef0123", "0123456789abcdef0123"))
    assert diffreport.as_text(same_label).splitlines()[0] == \
        "nimgen diff environments/e.yaml: base 0123456789ab → work tree"


def test_markdown_keeps_the_summary_and_leaves_out_details_that_do_not_fit() -> None:
    objects = tuple(ObjectChange(ObjectKey("ConfigMap", "nim", f"c{i}", ""), "added", "app", None,
                                 {"data": {"k": "`" * 4 + "x" * 200}}) for i in range(3))
    result = _diff(_plan(A), _plan(A), objects=objects)
    full = diffreport.as_markdown(result)
    assert full.count("<details>") == 3 and "left out" not in full
    assert "\n`````diff\n" in full and "``````" not in full  # one backtick longer than any run inside
    assert full.count("</details>\n<details>") == 2  # the blocks follow one another
    assert "<summary>+ added: ConfigMap nim/c0</summary>" in full
    head = full[:full.index("<details>")]
    block = len(full[full.index("<details>"):]) // 3
    limit = len(head) + 2 * block + 200
    short = diffreport.as_markdown(result, limit=limit)
    assert short.count("<details>") == 2
    assert short.endswith("\n_Details of 1 object left out to stay under "
                          f"{limit:,} characters; run `nimgen diff environments/e.yaml --output text "
                          "--base origin/main` to see them all._\n")
    assert len(short) <= limit
    none_fit = diffreport.as_markdown(result, limit=len(head))
    assert none_fit.count("<details>") == 0 and "Details of 3 objects left out" in none_fit
    merge = replace(result, base=Base("0123456789abcdef0123", "merge base of HEAD and main"))
    assert "--output text`" in diffreport.as_markdown(merge, limit=len(head))


def test_json_report_keeps_only_the_sides_each_change_has() -> None:
    key = ObjectKey("Service", "nim", "a", "")
    objects = (ObjectChange(key, "changed", "a", {"a": 1, "b": 1}, {"a": 2, "c": 1},
                            (FieldChange("a", "changed", 1, 2), FieldChange("b", "removed", before=1),
                             FieldChange("c", "added", after=1))),
               ObjectChange(replace(key, name="n"), "added", "a", None, {"x": 1}))
    data = json.loads(diffreport.as_json(_diff(_plan(A), _plan(A), objects=objects)))
    assert data["file"] == "environments/e.yaml"
    assert data["base"] == {"ref": "origin/main", "commit": "0123456789abcdef0123", "exists": True}
    assert data["environment"] == {"before": "e", "after": "e"}
    assert data["objects"][0] == {
        "change": "changed", "kind": "Service", "namespace": "nim", "name": "a", "group": "", "application": "a",
        "fields": [{"path": "a", "change": "changed", "before": 1, "after": 2},
                   {"path": "b", "change": "removed", "before": 1},
                   {"path": "c", "change": "added", "after": 1}]}
    assert data["objects"][1]["object"] == {"x": 1} and data["objects"][1]["fields"] == []
    assert data["summary"]["headline"] == "no model changes; GPUs unchanged; $/h unchanged"
    assert data["changed"] is True and list(data) == ["file", "base", "environment", "changed", "summary", "objects"]
    assert json.loads(diffreport.as_json(_diff(_plan(A), _plan(A))))["changed"] is False
    new = json.loads(diffreport.as_json(_diff(None, _plan(A))))
    assert new["base"]["exists"] is False and new["environment"] == {"before": None, "after": "e"}


# diff.py's comparison, on hand-built sides.
def test_field_changes_match_named_list_items_by_name_and_others_by_index() -> None:
    before = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["x", "y"], "n": 1}
    after = {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}], "args": ["x"], "n": 1.0,
             "weird key": {"k-1_a": True}}
    assert field_changes(before, after) == [
        FieldChange("args[1]", "removed", before="y"),
        FieldChange("env[0].value", "changed", "2", "3"),
        FieldChange("env[1]", "added", after={"name": "C", "value": "4"}),
        FieldChange("env[0]", "removed", before={"name": "A", "value": "1"}),
        FieldChange('["weird key"]', "added", after={"k-1_a": True}),
    ]
    # Duplicate names or non-maps fall back to positions.
    dup_before, dup_after = [{"name": "a", "v": 1}, {"name": "a", "v": 2}], [{"name": "a", "v": 1}]
    assert field_changes(dup_before, dup_after, "l") == [FieldChange("l[1]", "removed", before={"name": "a", "v": 2})]
    assert field_changes([1, 2], [1, 2, 3]) == [FieldChange("[2]", "added", after=3)]
    assert field_changes({"": {"a.b": 1}}, {"": {"a.b": 2}}) == [FieldChange('[""]["a.b"]', "changed", 1, 2)]
    assert field_changes(True, 1) == [FieldChange("", "changed", True, 1)]
    assert field_changes(0, False, "p") == [FieldChange("p", "changed", 0, False)]
    assert field_changes({"a": 1}, {"a": 1}) == []


def test_object_changes_and_the_unchanged_count() -> None:
    from nimgen.commands.diff import _object_changes

    k = [ObjectKey("ConfigMap", "nim", name, "") for name in "abcd"]
    before = Side(None, objects={k[0]: ("x", {"v": 1}), k[1]: ("x", {"v": 1}), k[2]: ("x", {"v": 1})})
    after = Side(None, objects={k[1]: ("y", {"v": 1}), k[2]: ("y", {"v": 2}), k[3]: ("y", {"v": 1})})
    changes, unchanged = _object_changes(before, after)
    assert [(c.key.name, c.change, c.application) for c in changes] == [("a", "removed", "x"), ("c", "changed", "y"),
                                                                         ("d", "added", "y")]
    assert changes[0].before == {"v": 1} and changes[0].after is None
    assert changes[2].before is None and changes[2].after == {"v": 1}
    assert changes[1].fields == (FieldChange("v", "changed", 1, 2),)
    assert unchanged == 1
    assert str(k[0]) == "ConfigMap nim/a" and str(ObjectKey("Namespace", "", "nim", "")) == "Namespace nim"


def test_model_changes_name_every_other_changed_setting() -> None:
    from pathlib import Path

    from nimgen.commands.diff import _model_changes
    from nimgen.commands.plan import plan
    from nimgen.environment.load import load_environment

    root = Path(__file__).resolve().parents[1]
    env = load_environment(root / "environments" / "prod.yaml", root)
    first, second, *rest = env.models
    changed = replace(first, min_replicas=first.min_replicas + 1, startup_timeout_minutes=99, cache_size="1Ti")
    new_env = replace(env, models=(changed, *rest))
    old_side, new_side = Side(env, plan(env)), Side(new_env, plan(new_env))
    found = _model_changes(old_side, new_side)
    assert [(m.name, m.change) for m in found] == sorted([(first.name, "changed"), (second.name, "removed")])
    by_name = {m.name: m for m in found}
    assert by_name[first.name].others == ("cacheSize", "startupTimeoutMinutes")  # replicas have their own column
    assert by_name[first.name].images == (str(first.image), str(first.image))
    assert by_name[second.name].images == (str(second.image), "")
    assert by_name[second.name].after is None and by_name[second.name].before is not None
    assert _model_changes(Side(None), new_side)[0].change == "added"
    assert _model_changes(old_side, old_side) == ()


# Edge cases the mutation run showed untested (benchmarks/mutation_score.py --group diff).
def test_field_changes_of_maps_lists_and_odd_keys() -> None:
    assert field_changes({"a": 1, "b": 2}, {"a": 1}) == [FieldChange("b", "removed", before=2)]
    assert field_changes({"a": 1}, "x") == [FieldChange("", "changed", {"a": 1}, "x")]
    assert field_changes([1], {"a": 1}, "p") == [FieldChange("p", "changed", [1], {"a": 1})]
    assert field_changes({1: "a", "b": 2}, {1: "a", "b": 3}) == [FieldChange("b", "changed", 2, 3)]  # mixed keys
    assert field_changes({"a_b": {"c-d": 1, "Xy": 1}}, {"a_b": {"c-d": 2, "Xy": 2}}) == [
        FieldChange("a_b.Xy", "changed", 1, 2), FieldChange("a_b.c-d", "changed", 1, 2)]
    assert field_changes({"Xa": 1}, {"Xa": 2}) == [FieldChange("Xa", "changed", 1, 2)]


def test_object_key_of_a_bare_manifest() -> None:
    from nimgen.commands.diff import object_key

    assert object_key({}) == ObjectKey("", "", "", "")
    assert object_key({"apiVersion": "a.b/v1", "kind": "K", "metadata": {"name": "n"}}) == ObjectKey("K", "", "n", "a.b")


def test_object_changes_keep_both_sides_of_a_change() -> None:
    from nimgen.commands.diff import _object_changes

    key = ObjectKey("ConfigMap", "nim", "a", "")
    [change] = _object_changes(Side(None, objects={key: ("x", {"v": 1})}), Side(None, objects={key: ("y", {"v": 2})}))[0]
    assert (change.before, change.after) == ({"v": 1}, {"v": 2})


def test_delta_rounds_to_cents() -> None:
    priced = _row("a", "a10g", (1, 1), (1.0, 1.0))
    data = diffreport.summary(_diff(_plan(priced), _plan(replace(priced, on_demand_usd_min=1.2345,
                                                                  on_demand_usd_max=1.2345))))
    assert data["totals"]["delta"] == {"gpusMin": 0, "gpusMax": 0, "onDemandUsdMin": 0.23, "onDemandUsdMax": 0.23}
    # A model's own row is not rounded before: its delta is, to cents.
    after = replace(priced, on_demand_usd_min=1.2345, on_demand_usd_max=1.2345)
    [model] = diffreport.summary(_diff(_plan(priced), _plan(after), models=(
        ModelChange("a", "changed", priced, after, ("img:1", "img:2")),)))["models"]
    assert model["delta"] == {"gpusMin": 0, "gpusMax": 0, "onDemandUsdMin": 0.23, "onDemandUsdMax": 0.23}
    grown = diffreport.summary(_diff(_plan(priced), _plan(replace(priced, gpus_min=3, gpus_max=5))))["totals"]["delta"]
    assert (grown["gpusMin"], grown["gpusMax"]) == (2, 4) and type(grown["gpusMin"]) is int


def test_json_writes_dates_as_text() -> None:
    import datetime

    added = ObjectChange(ObjectKey("ConfigMap", "nim", "c", ""), "added", "app", None,
                         {"data": {"since": datetime.date(2026, 1, 2)}})
    [obj] = json.loads(diffreport.as_json(_diff(_plan(A), _plan(A), objects=(added,))))["objects"]
    assert obj["object"] == {"data": {"since": "2026-01-02"}}


def test_inline_quotes_keep_unicode_and_dates() -> None:
    import datetime

    assert diffreport.change_lines(FieldChange("a", "changed", " é", "x"), arrows=True) == ['~ a: " é" -> x']
    assert diffreport.change_lines(FieldChange("d", "added", after=datetime.date(2026, 1, 2))) == ['+ d: "2026-01-02"']


def test_unified_diff_shows_two_lines_of_context() -> None:
    before, after = "1\n2\n3\n4\n5\n6\n7\n", "1\n2\n3\nX\n5\n6\n7\n"
    assert diffreport.change_lines(FieldChange("s", "changed", before, after)) == [
        "~ s:", "    @@ -2,5 +2,5 @@", "    2", "    3", "-   4", "+   X", "    5", "    6"]


def test_table_keeps_leading_spaces_of_a_cell() -> None:
    assert diffreport._table("  x\ty\n") == "  x  y"


def test_markdown_fences_and_budget_boundary() -> None:
    objects = (ObjectChange(ObjectKey("ConfigMap", "nim", "c", ""), "added", "app", None, {"data": {"k": "v"}}),)
    result = _diff(_plan(A), _plan(A), objects=objects)
    full = diffreport.as_markdown(result)
    assert "\n```diff\n" in full and "````" not in full and full.endswith("</details>\n")
    head = full[:full.index("<details>")]
    note_size = len(f"\n_Details of 1 object left out to stay under {10**6:,} characters; run `nimgen diff "
                    "environments/e.yaml --output text --base origin/main` to see them all._\n")
    exact = len(full) + note_size - len(f"{10**6:,}") + len(f"{len(full) + note_size:,}")
    assert diffreport.as_markdown(result, limit=exact).count("<details>") == 1  # a block that fits exactly
    assert diffreport.as_markdown(result, limit=exact - 1).count("<details>") == 0
    assert len(head) < exact


def test_json_text_layout() -> None:
    objects = (ObjectChange(ObjectKey("ConfigMap", "nim", "c", ""), "added", "app", None, {"data": {"k": "é"}}),)
    text = diffreport.as_json(_diff(_plan(A), None, objects=objects))
    assert text.startswith('{\n  "file": "environments/e.yaml",\n  "base": {\n    "ref": "origin/main",')
    assert '"k": "é"' in text
    assert json.loads(text)["environment"] == {"before": "e", "after": None}


# Whether anything changes (--exit-code), colour on a terminal, the warnings of diffeffects.py.
IMAGE = "spec.template.spec.containers[0].image"


def _statefulset(image: str) -> dict[str, Any]:
    return {"kind": "StatefulSet", "spec": {"template": {"spec": {"containers": [{"name": "nim", "image": image}]}}}}


def _colourful() -> Diff:
    """One object of each change, a model, and a StatefulSet whose new image restarts its pods."""
    key = ObjectKey("ConfigMap", "nim", "c", "")
    sts = ObjectKey("StatefulSet", "nim", "m", "apps")
    old, new = _statefulset("nim:1"), _statefulset("nim:2")
    objects = (ObjectChange(key, "added", "app", None, {"k": 1}),
               ObjectChange(replace(key, name="d"), "removed", "app", {"k": 1}, None),
               ObjectChange(sts, "changed", "m", old, new, tuple(field_changes(old, new))))
    return _diff(_plan(A), _plan(A, B), objects=objects, unchanged=1,
                 models=(ModelChange("b", "added", None, B, ("", "img:2")),))


def test_changed_is_any_object_added_removed_or_changed() -> None:
    assert _diff(_plan(A), _plan(A)).changed is False
    key = ObjectKey("ConfigMap", "nim", "c", "")
    for change in (ObjectChange(key, "added", "a", None, {"k": 1}), ObjectChange(key, "removed", "a", {"k": 1}, None),
                   ObjectChange(key, "changed", "a", {"k": 1}, {"k": 2}, (FieldChange("k", "changed", 1, 2),))):
        result = _diff(_plan(A), _plan(A), objects=(change,))  # no model, GPU or price changes: still a change
        assert result.changed is True
        assert diffreport.summary(result)["headline"] == "no model changes; GPUs unchanged; $/h unchanged"
    assert _diff(None, _plan(A)).changed is False  # the summary differs, but no object does
    assert _colourful().changed is True


def test_text_without_colour_has_no_escapes_and_with_colour_only_adds_them() -> None:
    result = _colourful()
    plain, coloured = diffreport.as_text(result), diffreport.as_text(result, color=True)
    assert "\x1b" not in plain and "\x1b" not in diffreport.as_text(result, color=False)
    assert click.unstyle(coloured) == plain  # same text, same alignment: colour only wraps it
    lines = dict(zip(plain.splitlines(), coloured.splitlines()))
    green, red, yellow, bold = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[1m"
    assert lines["+ ConfigMap nim/c (from Application app)"].startswith(green)
    assert lines["    + k: 1"] == f"    {green}+ k: 1\x1b[0m"
    assert lines["- ConfigMap nim/d (from Application app)"].startswith(red)
    assert lines["    - k: 1"] == f"    {red}- k: 1\x1b[0m"
    assert lines["~ StatefulSet nim/m (from Application m)"].startswith(yellow)
    assert lines[f"    ~ {IMAGE}: nim:1 -> nim:2"] == f"    {yellow}~ {IMAGE}: nim:1 -> nim:2\x1b[0m"
    for heading in (plain.splitlines()[0], plain.splitlines()[1], "⚠ Forces replacement / restarts (1):",
                    "Kubernetes objects: 1 added, 1 changed, 1 removed, 1 unchanged"):
        assert lines[heading] == f"{bold}{heading}\x1b[0m"
    header = next(line for line in lines if line.startswith("MODEL"))
    assert lines[header].startswith(f"{bold}MODEL\x1b[0m  ")
    row = next(line for line in lines if line.startswith("b  "))
    assert f"{green}added\x1b[0m" in lines[row]
    warning = next(line for line in lines if line.startswith("StatefulSet nim/m"))
    assert f"{yellow}{bold}restarts pods\x1b[0m" in lines[warning]
    assert "\x1b" not in diffreport.as_markdown(result) + diffreport.as_json(result)


def test_warnings_come_first_in_every_format() -> None:
    result = _colourful()
    lines = diffreport.as_text(result).splitlines()
    start = lines.index("⚠ Forces replacement / restarts (1):")
    assert start == 3 and lines[start + 1].split() == ["OBJECT", "FIELD", "EFFECT", "WHY"]
    assert lines[start + 2].split("  ")[0] == "StatefulSet nim/m"
    assert f"  {IMAGE}  restarts pods  new image: a rolling restart of every replica" in lines[start + 2]
    assert lines.index(next(line for line in lines if line.startswith("MODEL"))) > start + 2

    markdown = diffreport.as_markdown(result)
    assert "**⚠ Forces replacement / restarts (1)**\n\n| Object | Field | Effect | Why |\n|---|---|---|---|\n" \
        f"| StatefulSet nim/m | {IMAGE} | restarts pods | new image: a rolling restart of every replica |\n" in markdown
    assert markdown.index("⚠") < markdown.index("| Model |") < markdown.index("<details>")

    data = json.loads(diffreport.as_json(result))
    assert data["summary"]["replacements"] == [
        {"kind": "StatefulSet", "namespace": "nim", "name": "m", "group": "apps", "effect": "restarts pods",
         "reason": "new image: a rolling restart of every replica", "fields": [IMAGE]}]
    assert list(data["summary"]) == ["headline", "replacements", "models", "pools", "totals", "objects",
                                     "notRenderedOffline", "endpoint"]
    assert "⚠" not in diffreport.as_text(_diff(_plan(A), _plan(A)))


def test_a_warning_names_its_first_field_and_counts_the_rest() -> None:
    assert diffreport._fields({"fields": ["a", "b", "c"]}) == "a (+2 more)"
    assert diffreport._fields({"fields": ["a"]}) == "a"
    assert diffreport._fields({"fields": []}) == "(deleted)"
    key = ObjectKey("NodePool", "", "p|q", "karpenter.sh")
    result = _diff(_plan(A), _plan(A), objects=(ObjectChange(key, "removed", "pools", {"kind": "NodePool"}, None),))
    assert "| NodePool p\\|q | (deleted) | replaces nodes | NodePool deleted:" in diffreport.as_markdown(result)


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in _keys(item)}
    return {key for item in value for key in _keys(item)} if isinstance(value, list) else set()


def test_json_keys_are_camel_case_except_inside_objects() -> None:
    old, new = {"spec": {"snake_key": 1}}, {"spec": {"snake_key": 2}}
    objects = (*_colourful().objects, ObjectChange(ObjectKey("X", "", "x", ""), "added", "a", None, {"a_b": 1}),
               ObjectChange(ObjectKey("Y", "", "y", ""), "changed", "a", old, new, tuple(field_changes(old, new))))
    data = json.loads(diffreport.as_json(replace(_colourful(), objects=objects)))
    outside = {**data, "objects": [{key: value for key, value in item.items() if key not in ("object", "fields")}
                                   for item in data["objects"]]}
    assert not [key for key in _keys(outside) if "_" in key]
    assert {"gpusMin", "onDemandUsdMax", "gpusPerReplica", "replicasMin", "notRenderedOffline"} <= _keys(outside)
    assert data["objects"][-2]["object"] == {"a_b": 1}  # the manifests themselves are never renamed
    assert data["objects"][-1]["fields"][0]["path"] == "spec.snake_key"


def test_span_shows_whole_numbers_by_default() -> None:
    assert (diffreport.span(2, 5), diffreport.span(8, 8)) == ("2..5", "8")


def test_a_removed_environment_is_named_by_its_old_side() -> None:
    assert diffreport.as_markdown(_diff(_plan(A), None)).startswith("### nimgen diff: `e` (environments/e.yaml)\n")
    assert diffreport.as_markdown(_diff(None, _plan(A))).startswith("### nimgen diff: `e` (environments/e.yaml)\n")
