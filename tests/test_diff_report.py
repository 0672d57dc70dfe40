"""diff's summary and reports on hand-built results: exact numbers, signs, unknown prices, layout.

test_diff.py drives the whole command on git repositories; these tests pin each rule of the summary
directly (and fast), so that a wrong sum, sign or "unknown" fails here by name.
"""

from __future__ import annotations

import json
from dataclasses import replace

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


@pytest.mark.parametrize(("low", "high", "unit", "digits", "text"), [
    (0, 0, "", 0, "0"),
    (2, 2, "", 0, "+2"),
    (-2, -2, "", 0, "-2"),
    (8, 16, "", 0, "+8..16"),
    (-8, -16, "", 0, "-8..16"),
    (0, 16, "", 0, "+0..16"),
    (-4, 0, "", 0, "-4..0"),
    (0, -4, "", 0, "-0..4"),
    (1, -1, "", 0, "+1..-1"),
    (-1, 1, "", 0, "-1..+1"),
    (1.5, 1.5, "$", 2, "+$1.50"),
    (-1.21, -6.06, "$", 2, "-$1.21..6.06"),
])
def test_signed_range(low: float, high: float, unit: str, digits: int, text: str) -> None:
    assert diffreport.signed_range(low, high, unit, digits) == text


def test_summary_sums_every_model_and_pool_and_signs_the_delta() -> None:
    result = _diff(_plan(A, pools=(POOL_OLD,)), _plan(A, B, pools=(POOL_NEW,)),
                   models=(ModelChange("b", "added", None, B, ("", "img:2")),))
    data = diffreport.summary(result)
    assert data["headline"] == "+1 model, +2..4 GPUs, +$3.50..7.00/h"
    assert data["totals"] == {
        "before": {"gpus": {"min": 1, "max": 2}, "on_demand_usd_per_hour": {"min": 1.0, "max": 2.0}},
        "after": {"gpus": {"min": 3, "max": 6}, "on_demand_usd_per_hour": {"min": 4.5, "max": 9.0}},
        "delta": {"gpus": {"min": 2, "max": 4}, "on_demand_usd_per_hour": {"min": 3.5, "max": 7.0}},
    }
    [model] = data["models"]
    assert model["name"] == "b" and model["change"] == "added" and model["others"] == []
    assert model["image"] == {"before": None, "after": "img:2"}
    assert model["before"] is None and model["after"]["gpus_max"] == 4
    assert model["delta"] == {"gpus": {"min": 2, "max": 4}, "on_demand_usd_per_hour": {"min": 3.5, "max": 7.0}}
    [pool] = data["pools"]
    assert pool["pool"] == "a10g" and pool["before"]["gpu_limit"] == 8
    assert pool["delta"] == {"gpus": {"min": 2, "max": 4}, "on_demand_usd_per_hour": {"min": 3.5, "max": 7.0}}
    assert data["objects"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
    assert data["not_rendered_offline"] == []


def test_an_unknown_price_on_either_side_is_unknown_never_zero() -> None:
    unpriced = _row("c", "h200", (8, 8), (None, None))
    for before, after in ((_plan(A), _plan(A, unpriced)), (_plan(A, unpriced), _plan(A))):
        data = diffreport.summary(_diff(before, after))
        assert data["totals"]["delta"]["on_demand_usd_per_hour"] is None
        assert data["headline"].endswith("$/h unknown (a price is not in the catalog)")
    one_sided = _row("d", "a10g", (1, 1), (1.0, None))
    assert diffreport.summary(_diff(_plan(A), _plan(A, one_sided)))["totals"]["after"]["on_demand_usd_per_hour"] is None


def test_a_side_without_a_plan_counts_as_zero() -> None:
    data = diffreport.summary(_diff(None, _plan(A, pools=(POOL_OLD,))))
    assert data["headline"] == "new environment: no model changes, +1..2 GPUs, +$1.00..2.00/h"
    assert data["totals"]["before"] == {"gpus": {"min": 0, "max": 0}, "on_demand_usd_per_hour": {"min": 0.0, "max": 0.0}}
    assert data["pools"][0]["before"] is None
    gone = diffreport.summary(_diff(_plan(A), None))
    assert gone["headline"] == "environment removed: no model changes, -1..2 GPUs, -$1.00..2.00/h"


@pytest.mark.parametrize(("models", "plans", "headline"), [
    ((), (_plan(A), _plan(A)), "no model changes, GPUs unchanged, $/h unchanged"),
    ((ModelChange("b", "removed", B, None, ("x", "")),), (_plan(A, B), _plan(A)),
     "-1 model, -2..4 GPUs, -$3.50..7.00/h"),
    ((ModelChange("a", "added", None, A, ("", "x")), ModelChange("b", "added", None, B, ("", "x"))),
     (_plan(), _plan(A, B)), "+2 models, +3..6 GPUs, +$4.50..9.00/h"),
    ((ModelChange("a", "changed", A, A, ("x", "y")),), (_plan(A), _plan(A)),
     "1 model changed, GPUs unchanged, $/h unchanged"),
    ((ModelChange("a", "changed", A, A, ("x", "y")), ModelChange("b", "changed", B, B, ("x", "y"))),
     (_plan(A, B), _plan(A, B)), "2 models changed, GPUs unchanged, $/h unchanged"),
    ((ModelChange("a", "changed", A, replace(A, gpus_min=2, gpus_max=2), ("x", "x")),),
     (_plan(A), _plan(replace(A, gpus_min=2, gpus_max=2))), "1 model changed, +1..0 GPUs, $/h unchanged"),
    ((), (_plan(A), _plan(replace(A, gpus_min=2, gpus_max=3))), "no model changes, +1 GPU, $/h unchanged"),
    ((), (_plan(A), _plan(replace(A, gpus_min=3, gpus_max=4))), "no model changes, +2 GPUs, $/h unchanged"),
    ((), (_plan(A), _plan(replace(A, gpus_min=0, gpus_max=1))), "no model changes, -1 GPU, $/h unchanged"),
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
    assert data["not_rendered_offline"] == ["adapter (prometheus-adapter 2.0)", "kps (kube-prometheus-stack 1.0)"]


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


def test_text_report() -> None:
    key = ObjectKey("Service", "nim", "b", "")
    objects = (ObjectChange(key, "changed", "b", {"a": 1}, {"a": 2}, (FieldChange("a", "changed", 1, 2),)),
               ObjectChange(ObjectKey("Application", "argocd", "b", "argoproj.io"), "added", "", None, {"k": 1}))
    result = _diff(_plan(A, pools=(POOL_OLD,)), _plan(A, B, pools=(POOL_NEW,)), objects=objects, unchanged=3,
                   models=(ModelChange("b", "added", None, B, ("", "img:2")),))
    result.after.external.add("kps (kube-prometheus-stack 1.0)")
    lines = diffreport.as_text(result).splitlines()
    assert lines[:2] == ["nimgen diff environments/e.yaml: base 0123456789ab (origin/main) -> work tree",
                         "+1 model, +2..4 GPUs, +$3.50..7.00/h"]
    assert "Kubernetes objects: 1 added, 1 changed, 0 removed, 3 unchanged" in lines
    assert lines.index("~ Service nim/b (from Application b)") + 1 == lines.index("    ~ a: 1 -> 2")
    assert "+ Application argocd/b (applied by hand)" in lines
    assert lines[-2:] == ["Not rendered offline (external charts; only their Applications are compared):",
                          "  kps (kube-prometheus-stack 1.0)"]
    same_label = _diff(_plan(A), _plan(A), base=Base("0123456789abcdef0123", "0123456789abcdef0123"))
    assert diffreport.as_text(same_label).splitlines()[0] == \
        "nimgen diff environments/e.yaml: base 0123456789ab -> work tree"


def test_markdown_keeps_the_summary_and_leaves_out_details_that_do_not_fit() -> None:
    objects = tuple(ObjectChange(ObjectKey("ConfigMap", "nim", f"c{i}", ""), "added", "app", None,
                                 {"data": {"k": "`" * 4 + "x" * 200}}) for i in range(3))
    result = _diff(_plan(A), _plan(A), objects=objects)
    full = diffreport.as_markdown(result)
    assert full.count("<details>") == 3 and "left out" not in full
    assert "`````diff\n" in full  # the fence is longer than any run of backticks inside
    assert "<summary>+ added: ConfigMap nim/c0</summary>" in full
    head = full[:full.index("<details>")]
    block = len(full[full.index("<details>"):]) // 3
    limit = len(head) + 2 * block + 200
    short = diffreport.as_markdown(result, limit=limit)
    assert short.count("<details>") == 2
    assert short.endswith("\n_Details of 1 object left out to stay under "
                          f"{limit:,} characters; run `nimgen diff environments/e.yaml --format text "
                          "--base origin/main` to see them all._\n")
    assert len(short) <= limit
    none_fit = diffreport.as_markdown(result, limit=len(head))
    assert none_fit.count("<details>") == 0 and "Details of 3 objects left out" in none_fit
    merge = replace(result, base=Base("0123456789abcdef0123", "merge base of HEAD and main"))
    assert "--format text`" in diffreport.as_markdown(merge, limit=len(head))


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
    assert data["summary"]["headline"] == "no model changes, GPUs unchanged, $/h unchanged"
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
@pytest.mark.parametrize(("low", "high", "unit", "digits", "text"), [
    (0.5, 0.5, "$", 2, "+$0.50"), (-0.5, -0.5, "$", 2, "-$0.50"), (0.25, 0.75, "$", 2, "+$0.25..0.75"),
    (-0.25, 0.75, "$", 2, "-$0.25..+0.75"), (0.5, -0.5, "$", 2, "+$0.50..-0.50"),
])
def test_signed_range_below_one(low: float, high: float, unit: str, digits: int, text: str) -> None:
    assert diffreport.signed_range(low, high, unit, digits) == text


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
    assert data["totals"]["delta"]["on_demand_usd_per_hour"] == {"min": 0.23, "max": 0.23}


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
                    "environments/e.yaml --format text --base origin/main` to see them all._\n")
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
