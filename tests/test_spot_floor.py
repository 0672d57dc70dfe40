"""Spot with a floor: a pool with spotPerOnDemand renders Karpenter's On-Demand/Spot ratio split (a NodePool
pair over nimgen.io/capacity-spread), a model with onDemandReplicas spreads over it, every misuse is refused
word for word, plan prices the floor, and validate places the pods on either NodePool of the pair."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from conftest import example_environment
from helpers import VALID, refused, run, write_env
from kube import crd_errors
from nimgen import capacity, helm
from nimgen.commands.plan import as_json, as_text, plan
from nimgen.components import spotfloor
from nimgen.components.nodepools import nodepool_values
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.model import Environment
from nimgen.validation import crossref
from nimgen.validation.cel import CelProgram
from nimgen.validation.crossref import lands_on, pods
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import AppResult
from nimgen.yamlio import load_all_plain

PROJECT = Path(__file__).resolve().parents[1]
POOL_CHART = PROJECT / "generator" / "nimgen" / "charts" / "gpu-nodepools"
MODEL_CHART = PROJECT / "generator" / "nimgen" / "charts" / "nim-llm"
SELECTOR = {"app.kubernetes.io/name": "nim-llm", "app.kubernetes.io/instance": "llama3-8b-instruct"}
ANCHOR = '  kubernetesVersion: "1.33"\n'


def environment(*, k: int | None = 1, types: str = "[spot, on-demand]", limit: int = 16, name: str = "a10g",
                replicas: str = "{min: 2, max: 5}", floor: int | None = 1, extra_pools: str = "") -> str:
    """VALID on one g5 pool (with spotPerOnDemand k), its model with replicas and onDemandReplicas."""
    pool = (f"  karpenter: {{nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}}\nnodePools:\n"
            f"  - name: {name}\n    instanceFamilies: [g5]\n    capacityTypes: {types}\n    gpuLimit: {limit}\n"
            "    amiVersion: v20251112\n" + (f"    spotPerOnDemand: {k}\n" if k is not None else "") + extra_pools)
    text = VALID.replace(ANCHOR, ANCHOR + pool).replace("nodePool: a10g", f"nodePool: {name}")
    return text + f"    replicas: {replicas}\n" + (f"    onDemandReplicas: {floor}\n" if floor is not None else "")


def pool_objects(engine: helm.Engine, values: dict[str, Any]) -> list[dict[str, Any]]:
    files = engine.template(POOL_CHART, values, release="gpu-nodepools", namespace="kube-system", kube_version="1.33")
    return [d for path, text in sorted(files.items()) if path.endswith(".yaml") for d in load_all_plain(text) if d]


def nodepools_by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "NodePool"}


def requirement(nodepool: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((r for r in nodepool["spec"]["template"]["spec"]["requirements"] if r["key"] == key), None)


# ------------------------------------------------------------------ the NodePool pair


def test_prod_pool_renders_the_nodepool_pair(helm_engine: helm.Engine) -> None:
    values = nodepool_values(example_environment("prod"))
    assert (values["pools"]["a10g"]["spotPerOnDemand"], values["pools"]["a10g"]["onDemandGpuLimit"]) == (1, 8)
    assert "spotPerOnDemand" not in values["pools"]["h100"]
    docs = pool_objects(helm_engine, values)
    pools = nodepools_by_name(docs)
    assert sorted(pools) == ["a10g", "a10g-on-demand", "h100"]
    spot, on_demand = pools["a10g"], pools["a10g-on-demand"]
    assert requirement(spot, "karpenter.sh/capacity-type") == {
        "key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}
    assert requirement(spot, spotfloor.SPREAD_LABEL) == {
        "key": "nimgen.io/capacity-spread", "operator": "In", "values": ["2"]}
    assert requirement(on_demand, "karpenter.sh/capacity-type") == {
        "key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
    assert requirement(on_demand, spotfloor.SPREAD_LABEL) == {
        "key": "nimgen.io/capacity-spread", "operator": "In", "values": ["1"]}
    # The limits split gpuLimit 16; the pool outweighs its pair (equal weights go by name, descending).
    assert (spot["spec"]["limits"], on_demand["spec"]["limits"]) == ({"nvidia.com/gpu": "8"}, {"nvidia.com/gpu": "8"})
    assert (spot["spec"].get("weight"), on_demand["spec"].get("weight")) == (1, None)
    # Both carry the pool's label (the model's nodeSelector is unchanged) and launch from its one EC2NodeClass.
    for nodepool in (spot, on_demand):
        assert nodepool["spec"]["template"]["metadata"]["labels"] == {"nimgen.io/node-pool": "a10g"}
        assert nodepool["spec"]["template"]["spec"]["nodeClassRef"] == {
            "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "a10g"}
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "EC2NodeClass") == ["a10g", "h100"]
    # Everything else is the pool's own.
    assert _shared_part(spot) == _shared_part(on_demand)
    assert requirement(pools["h100"], spotfloor.SPREAD_LABEL) is None and "weight" not in pools["h100"]["spec"]


def _shared_part(nodepool: dict[str, Any]) -> dict[str, Any]:
    """The NodePool without what the pair's two members set apart (name, weight, limit, capacity, spread)."""
    out = copy.deepcopy(nodepool)
    del out["metadata"], out["spec"]["limits"]
    out["spec"].pop("weight", None)
    out["spec"]["template"]["spec"]["requirements"] = [
        r for r in out["spec"]["template"]["spec"]["requirements"]
        if r["key"] not in ("karpenter.sh/capacity-type", spotfloor.SPREAD_LABEL)]
    return out


def test_three_spot_values_per_on_demand_value(tmp_path: Path, helm_engine: helm.Engine) -> None:
    env = load_environment(write_env(tmp_path, environment(k=3, limit=10, replicas="{min: 4, max: 6}")), tmp_path)
    pools = nodepools_by_name(pool_objects(helm_engine, nodepool_values(env)))
    assert requirement(pools["a10g"], spotfloor.SPREAD_LABEL) == {
        "key": "nimgen.io/capacity-spread", "operator": "In", "values": ["2", "3", "4"]}
    assert requirement(pools["a10g-on-demand"], spotfloor.SPREAD_LABEL) == {
        "key": "nimgen.io/capacity-spread", "operator": "In", "values": ["1"]}
    # ceil(10 / 4) = 3 On-Demand, 7 for the rest.
    assert pools["a10g"]["spec"]["limits"] == {"nvidia.com/gpu": "7"}
    assert pools["a10g-on-demand"]["spec"]["limits"] == {"nvidia.com/gpu": "3"}


def test_a_pool_without_spot_per_on_demand_stays_one_nodepool(tmp_path: Path, helm_engine: helm.Engine) -> None:
    env = load_environment(write_env(tmp_path, environment(k=None, floor=None)), tmp_path)
    pools = nodepools_by_name(pool_objects(helm_engine, nodepool_values(env)))
    assert list(pools) == ["a10g"]
    assert requirement(pools["a10g"], spotfloor.SPREAD_LABEL) is None
    assert pools["a10g"]["spec"]["limits"] == {"nvidia.com/gpu": "16"} and "weight" not in pools["a10g"]["spec"]


def test_the_pair_passes_karpenters_schema_and_cel(helm_engine: helm.Engine, crd_schemas: Path) -> None:
    pools = nodepools_by_name(pool_objects(helm_engine, nodepool_values(example_environment("prod"))))
    schema = json.loads((crd_schemas / "karpenter.sh" / "nodepool_v1.json").read_text(encoding="utf-8"))
    program = CelProgram.from_schema(schema)
    for name in ("a10g", "a10g-on-demand"):
        assert crd_errors(pools[name], crd_schemas) == []
        violations, _ = program.check(pools[name])
        assert violations == []
    # The label's domain matters: Karpenter keeps karpenter.sh to itself.
    broken = copy.deepcopy(pools["a10g-on-demand"])
    requirement(broken, spotfloor.SPREAD_LABEL)["key"] = "karpenter.sh/capacity-spread"  # type: ignore[index]
    violations, _ = program.check(broken)
    assert [v.message for v in violations] == ["label domain \"karpenter.sh\" is restricted"]


def test_the_chart_refuses_an_on_demand_share_of_the_whole_limit(helm_engine: helm.Engine) -> None:
    values = nodepool_values(example_environment("prod"))
    values["pools"]["a10g"]["onDemandGpuLimit"] = 16
    with pytest.raises(helm.HelmError, match="pool a10g: onDemandGpuLimit must be set and below gpuLimit"):
        pool_objects(helm_engine, values)


# ------------------------------------------------------------------ the model's spread


def test_the_model_spreads_over_the_capacity_label(tmp_path: Path, helm_engine: helm.Engine) -> None:
    env = load_environment(write_env(tmp_path, environment(k=2, replicas="{min: 3, max: 6}")), tmp_path)
    source = applications.by_name(env)["llama3-8b-instruct"]["spec"]["source"]["helm"]
    assert source["valuesObject"]["capacitySpread"] == {
        "enabled": True, "topologyKey": "nimgen.io/capacity-spread", "minDomains": 3}
    files = helm_engine.template(MODEL_CHART, source["valuesObject"], release=source["releaseName"], namespace="nim",
                                 kube_version="1.33")
    [workload] = [d for path, body in files.items() if path.endswith(".yaml") for d in load_all_plain(body)
                  if d and d["kind"] == "StatefulSet"]
    pod = workload["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nimgen.io/node-pool": "a10g"}
    assert pod["topologySpreadConstraints"] == [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": SELECTOR}},
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": SELECTOR}},
        {"maxSkew": 1, "topologyKey": "nimgen.io/capacity-spread", "whenUnsatisfiable": "DoNotSchedule",
         "minDomains": 3, "labelSelector": {"matchLabels": SELECTOR}}]


def test_a_model_without_a_floor_does_not_spread_over_it(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, environment(floor=None)), tmp_path)
    assert "capacitySpread" not in applications.by_name(env)["llama3-8b-instruct"]["spec"]["source"]["helm"][
        "valuesObject"]


def test_a_floor_spreads_only_over_a_pool_that_splits(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, environment()), tmp_path)
    [model], [pool] = env.models, env.node_pools
    assert spotfloor.chart_values(env, model)["capacitySpread"]["minDomains"] == 2
    # The checks refuse both (a floor needs its pool, and the pool a split): the values stay empty regardless.
    unsplit = dataclasses.replace(env, node_pools=(dataclasses.replace(pool, spot_per_on_demand=0),))
    assert spotfloor.chart_values(unsplit, model) == {}
    assert spotfloor.chart_values(dataclasses.replace(env, node_pools=()), model) == {}


# ------------------------------------------------------------------ refusals, word for word


def test_a_pool_that_buys_no_spot_is_refused(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(types="[on-demand]"))
    assert ("$.nodePools[0].spotPerOnDemand: node pool 'a10g' sets spotPerOnDemand but buys only on-demand: the floor "
            "runs On-Demand and the other replicas prefer Spot\n"
            "    hint: set capacityTypes: [spot, on-demand], or drop spotPerOnDemand") in output


def test_a_pool_that_buys_no_on_demand_is_refused(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(types="[spot]"))
    assert ("$.nodePools[0].spotPerOnDemand: node pool 'a10g' sets spotPerOnDemand but buys only spot: the floor "
            "runs On-Demand and the other replicas prefer Spot\n"
            "    hint: set capacityTypes: [spot, on-demand], or drop spotPerOnDemand") in output


def test_a_pool_with_reserved_capacity_is_refused(tmp_path: Path) -> None:
    reservation = ("    capacityReservations:\n      - id: cr-0123456789abcdef0\n"
                   "        instanceType: g5.2xlarge\n        instances: 1\n")
    output = refused(tmp_path, environment(types="[reserved, spot, on-demand]", extra_pools=reservation))
    assert ("$.nodePools[0].spotPerOnDemand: node pool 'a10g' sets spotPerOnDemand, which splits Spot from "
            "On-Demand, but also buys reserved capacity, which that split does not place\n"
            "    hint: keep the reservations in a pool of their own, or drop spotPerOnDemand") in output


def test_the_on_demand_name_must_be_free(tmp_path: Path) -> None:
    other = ("  - name: a10g-on-demand\n    instanceFamilies: [g6]\n    gpuLimit: 4\n    amiVersion: v20251112\n")
    text = environment(extra_pools=other)
    text += ("  - name: other\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: a10g-on-demand\n")
    output = refused(tmp_path, text)
    assert ("$.nodePools[0].spotPerOnDemand: node pool 'a10g' sets spotPerOnDemand, so it renders a second NodePool "
            "'a10g-on-demand', which is also the name of nodePools[1]\n"
            "    hint: rename one of the two pools") in output


def test_the_on_demand_name_must_fit_a_label_value(tmp_path: Path) -> None:
    name = "a" * 54
    output = refused(tmp_path, environment(name=name))
    assert (f"$.nodePools[0].spotPerOnDemand: node pool '{name}' sets spotPerOnDemand, so it renders a second "
            f"NodePool '{name}-on-demand' of 64 characters; Karpenter labels its nodes karpenter.sh/nodepool with "
            "that name, and a label value holds at most 63\n"
            "    hint: shorten the pool name to at most 53 characters") in output
    assert run("render", write_env(tmp_path, environment(name="a" * 53))).exit_code == 0


def test_a_split_needs_a_gpu_for_each_nodepool(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(limit=1, replicas="{min: 1, max: 1}", floor=None))
    assert ("$.nodePools[0].gpuLimit: node pool 'a10g' sets spotPerOnDemand, which splits its gpuLimit between two "
            "NodePools, but a gpuLimit of 1 leaves 'a10g' none\n"
            "    hint: raise gpuLimit to at least 2") in output


def test_a_floor_needs_a_pool_with_spot_per_on_demand(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(k=None))
    assert ("$.models[0].onDemandReplicas: model 'llama3-8b-instruct' keeps 1 replicas On-Demand, but its node pool "
            "'a10g' sets no spotPerOnDemand: nothing splits the pool's nodes between On-Demand and Spot\n"
            "    hint: set spotPerOnDemand on node pool 'a10g' (with capacityTypes [spot, on-demand]), or drop "
            "onDemandReplicas") in output


def test_a_floor_out_of_reach_at_min_replicas_is_refused(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(k=1, replicas="{min: 3, max: 6}", floor=2))
    assert ("$.models[0].onDemandReplicas: model 'llama3-8b-instruct' keeps 2 replicas On-Demand, but at replicas.min "
            "3 the spread over node pool 'a10g' (spotPerOnDemand 1: one On-Demand value of 2) guarantees only 1\n"
            "    hint: raise replicas.min to 4, or lower onDemandReplicas to 1") in output


def test_a_floor_out_of_reach_names_the_ratio_that_works(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(k=3, replicas="{min: 2, max: 6}", floor=1))
    assert ("$.models[0].onDemandReplicas: model 'llama3-8b-instruct' keeps 1 replicas On-Demand, but at replicas.min "
            "2 the spread over node pool 'a10g' (spotPerOnDemand 3: one On-Demand value of 4) guarantees only 0\n"
            "    hint: raise replicas.min to 4, or lower spotPerOnDemand of node pool 'a10g' to 1") in output


@pytest.mark.parametrize(("k", "minimum", "floor", "ok"), [
    (1, 2, 1, True), (1, 3, 1, True), (1, 4, 2, True), (2, 3, 1, True), (2, 5, 2, False), (2, 6, 2, True),
    (9, 10, 1, True), (9, 9, 1, False)])
def test_floor_of_min_over_k_plus_one_decides(tmp_path: Path, k: int, minimum: int, floor: int, ok: bool) -> None:
    text = environment(k=k, limit=40, replicas=f"{{min: {minimum}, max: {minimum}}}", floor=floor)
    result = run("render", write_env(tmp_path, text))
    assert (result.exit_code == 0) is ok, result.output


def test_each_nodepool_of_the_pair_must_hold_its_share(tmp_path: Path) -> None:
    # gpuLimit 3 holds max 3, but splits 2 On-Demand / 1: the spread may put 2 replicas on the Spot side.
    output = refused(tmp_path, environment(limit=3, replicas="{min: 2, max: 3}"))
    assert ("$.nodePools[0].gpuLimit: node pool 'a10g' gives 2 of its gpuLimit 3 to NodePool 'a10g-on-demand' and 1 "
            "to 'a10g', but at replicas.max plus rollout surge its models may need 2 On-Demand and 2 on the rest "
            "(the spread puts up to 1 in 2 replicas, rounded up, On-Demand)\n"
            "    hint: raise gpuLimit to at least 4") in output
    assert run("render", write_env(tmp_path, environment(limit=4, replicas="{min: 2, max: 3}"))).exit_code == 0


def test_the_keys_are_range_checked_by_the_schema(tmp_path: Path) -> None:
    for k in (10, 0, -1):
        output = refused(tmp_path, environment(k=k))
        assert "$.nodePools[0].spotPerOnDemand:" in output and "Traceback" not in output
    output = refused(tmp_path, environment(floor=0))
    assert "$.models[0].onDemandReplicas:" in output and "Traceback" not in output


# ------------------------------------------------------------------ plan


def test_plan_prices_the_floor_on_demand_and_the_rest_on_spot() -> None:
    result = plan(example_environment("prod"))
    row = next(r for r in result.models if r.model == "llama3-8b-instruct")
    g5 = capacity.instances()["g5.2xlarge"]
    on_demand, spot = g5.hourly("us-west-2"), g5.spot_hourly("us-west-2")
    assert on_demand is not None and spot is not None
    # min 2: ceil(2/2) = 1 On-Demand; max 5: ceil(5/2) = 3 On-Demand.
    assert (row.on_demand_floor, row.on_demand_min, row.on_demand_max) == (1, 1, 3)
    assert row.spot_usd_min == round(on_demand + spot, 2) == 1.70
    assert row.spot_usd_max == round(3 * on_demand + 2 * spot, 2) == 4.61
    assert (row.on_demand_usd_min, row.on_demand_usd_max) == (2.42, 6.06)  # all On-Demand is unchanged
    [pool] = [p for p in result.pools if p.pool == "a10g"]
    assert (pool.gpu_limit, pool.on_demand_gpu_limit) == (16, 8)
    data = json.loads(as_json(result))
    assert {key: data["models"][0][key] for key in ("onDemandFloor", "onDemandMin", "onDemandMax")} == {
        "onDemandFloor": 1, "onDemandMin": 1, "onDemandMax": 3}
    text = as_text(result)
    assert ("llama3-8b-instruct      a10g  g5.2xlarge (A10G)   1             2-5 (1 on-demand)  20/24 GiB    2-5   "
            "2.42-6.06      1.70-4.61\n") in text
    assert "a10g  2-5   16 (8 on-demand)  -              2.42-6.06\n" in text
    assert text.endswith("spot with a floor: the Spot column prices ceil(replicas / (spotPerOnDemand + 1)) replicas "
                         "On-Demand (the spread's worst case) and the rest at Spot\n")


def test_plan_without_a_floor_is_unchanged(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, environment(k=None, floor=None)), tmp_path)
    result = plan(env)
    [row] = result.models
    assert (row.on_demand_floor, row.on_demand_min, row.on_demand_max) == (0, 0, 0)
    assert result.pools[0].on_demand_gpu_limit == 0
    text = as_text(result)
    assert "on-demand)" not in text and "spot with a floor" not in text


def test_plan_counts_the_surge_in_the_floor_worst_case(tmp_path: Path) -> None:
    text = environment(k=2, replicas="{min: 3, max: 4}") + (
        "    workload: Deployment\n    cache: {type: emptyDir}\n    rollout: {surge: 1}\n")
    [row] = plan(load_environment(write_env(tmp_path, text), tmp_path)).models
    # 4 + 1 surge = 5 at full scale: ceil(5/3) = 2 On-Demand; min 3: ceil(3/3) = 1.
    assert (row.on_demand_min, row.on_demand_max) == (1, 2)
    assert "3-4 +1 surge (1 on-demand)" in as_text(plan(load_environment(write_env(tmp_path, text), tmp_path)))


# ------------------------------------------------------------------ validate's placement


def _prod_pod_and_pools(engine: helm.Engine) -> tuple[Applied, list[dict[str, Any]]]:
    env = example_environment("prod")
    source = applications.by_name(env)["llama3-8b-instruct"]["spec"]["source"]["helm"]
    files = engine.template(MODEL_CHART, source["valuesObject"], release=source["releaseName"], namespace="nim",
                            kube_version="1.33")
    [workload] = [d for path, body in files.items() if path.endswith(".yaml") for d in load_all_plain(body)
                  if d and d["kind"] == "StatefulSet"]
    return Applied(workload, "llama3-8b-instruct", "chart"), pool_objects(engine, nodepool_values(env))


def _check(workload: Applied, pool_docs: list[dict[str, Any]]) -> list[Any]:
    results = [AppResult(app={"metadata": {"name": "llama3-8b-instruct"}}, file="m.yaml", objects=[workload]),
               AppResult(app={"metadata": {"name": "gpu-nodepools"}}, file="p.yaml",
                         objects=[Applied(d, "gpu-nodepools", "chart") for d in pool_docs])]
    return crossref.check(cast(Environment, SimpleNamespace(name="prod")), [], results)


def test_validate_places_floor_pods_on_either_nodepool_of_the_pair(helm_engine: helm.Engine) -> None:
    workload, docs = _prod_pod_and_pools(helm_engine)
    [pod] = pods([workload])
    pools = nodepools_by_name(docs)
    assert {name: lands_on(pod, nodepool) for name, nodepool in pools.items()} == {
        "a10g": True, "a10g-on-demand": True, "h100": False}
    assert [f for f in _check(workload, docs) if f.check == "nodepool"] == []


def test_validate_refuses_a_spread_over_a_label_no_pool_sets(helm_engine: helm.Engine) -> None:
    workload, docs = _prod_pod_and_pools(helm_engine)
    plain = [copy.deepcopy(d) for d in docs if d["kind"] != "NodePool" or d["metadata"]["name"] != "a10g-on-demand"]
    for doc in plain:
        if doc["kind"] == "NodePool":
            spec = doc["spec"]["template"]["spec"]
            spec["requirements"] = [r for r in spec["requirements"] if r["key"] != spotfloor.SPREAD_LABEL]
    [pod] = pods([workload])
    assert not any(lands_on(pod, d) for d in plain if d["kind"] == "NodePool")
    assert lands_on(pod, nodepools_by_name(plain)["a10g"], spread=False)
    [finding] = [f for f in _check(workload, plain) if f.check == "nodepool"]
    assert (finding.obj, finding.path) == ("StatefulSet nim/llama3-8b-instruct", "spec.template.spec")
    assert finding.message == ("its pods spread (DoNotSchedule) over nimgen.io/capacity-spread, a label the nodes of "
                               "the NodePools they fit (a10g) do not carry: kube-scheduler never places them")
    assert finding.hint == ("spread over a label the pool sets (nimgen.io/capacity-spread needs a pool with "
                            "spotPerOnDemand), or make the spread ScheduleAnyway")


# ------------------------------------------------------------------ the rules one by one, on plain documents

SPLIT = {"name": "g5", "capacityTypes": ["spot", "on-demand"], "spotPerOnDemand": 1, "gpuLimit": 16}


def _findings(pools: list[dict[str, Any]], models: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    spotfloor.check({"nodePools": pools}, models, lambda path, message, hint="", **_: found.append((path, message, hint)))
    return found


def test_a_floor_model_without_replicas_runs_one() -> None:
    assert _findings([SPLIT], [{"name": "m", "nodePool": "g5", "onDemandReplicas": 1}]) == [
        (["models", 0, "onDemandReplicas"], ("model 'm' keeps 1 replicas On-Demand, but at replicas.min 1 the spread "
         "over node pool 'g5' (spotPerOnDemand 1: one On-Demand value of 2) guarantees only 0"),
         "raise replicas.min to 2")]


def test_every_fix_of_a_floor_out_of_reach_is_a_whole_number() -> None:
    model = {"name": "m", "nodePool": "g5", "onDemandReplicas": 2, "replicas": {"min": 5, "max": 5}}
    [(_, _, hint)] = _findings([{**SPLIT, "spotPerOnDemand": 2}], [model])
    assert hint == "raise replicas.min to 6, or lower spotPerOnDemand of node pool 'g5' to 1, or lower onDemandReplicas to 1"


def test_a_pool_without_capacity_types_buys_on_demand_only() -> None:
    pool = {key: value for key, value in SPLIT.items() if key != "capacityTypes"}
    assert _findings([pool], []) == [
        (["nodePools", 0, "spotPerOnDemand"], ("node pool 'g5' sets spotPerOnDemand but buys only on-demand: the floor "
         "runs On-Demand and the other replicas prefer Spot"), ("set capacityTypes: [spot, on-demand], or drop "
         "spotPerOnDemand"))]


def test_a_split_of_two_gpus_gives_each_nodepool_one() -> None:
    assert _findings([{**SPLIT, "gpuLimit": 2}], []) == []


def test_each_half_holds_only_its_own_pools_models() -> None:
    pools = [{**SPLIT, "gpuLimit": 4}, {"name": "other"}]
    other = {"name": "o", "nodePool": "other", "gpus": 3}
    assert _findings(pools, [other]) == []
    assert _findings(pools, [other, {"name": "m", "nodePool": "g5", "gpus": 3}]) == [
        (["nodePools", 0, "gpuLimit"], ("node pool 'g5' gives 2 of its gpuLimit 4 to NodePool 'g5-on-demand' and 2 to "
         "'g5', but at replicas.max plus rollout surge its models may need 0 On-Demand and 3 on the rest (the spread "
         "puts up to 1 in 2 replicas, rounded up, On-Demand)"), "raise gpuLimit to at least 6")]


def test_the_rest_holds_each_models_rollout_surge() -> None:
    model = {"name": "a", "nodePool": "g5", "replicas": {"min": 1, "max": 2}}
    pools = [{**SPLIT, "gpuLimit": 4}]
    assert _findings(pools, [model]) == []
    [(_, message, _)] = _findings(pools, [{**model, "rollout": {"surge": 1}}])
    assert "its models may need 0 On-Demand and 3 on the rest" in message


def test_a_pool_over_its_whole_limit_is_left_to_the_pools_own_check() -> None:
    models = [{"name": "a", "nodePool": "g5", "gpus": 2}, {"name": "b", "nodePool": "g5", "gpus": 3}]
    assert _findings([{**SPLIT, "gpuLimit": 4}], models) == []


def test_the_floor_models_add_up_on_both_halves() -> None:
    floor = {"nodePool": "g5", "onDemandReplicas": 1, "replicas": {"min": 2, "max": 3}}
    [(_, message, hint)] = _findings([{**SPLIT, "gpuLimit": 6}], [{"name": "a", **floor}, {"name": "b", **floor}])
    assert "its models may need 4 On-Demand and 4 on the rest" in message
    assert hint == "raise gpuLimit to at least 8"


def test_the_pools_other_models_add_up_on_the_rest() -> None:
    models = [{"name": "a", "nodePool": "g5", "gpus": 2}, {"name": "b", "nodePool": "g5", "gpus": 2}]
    [(_, message, _)] = _findings([{**SPLIT, "gpuLimit": 6}], models)
    assert "its models may need 0 On-Demand and 4 on the rest" in message


@pytest.mark.parametrize("k", [0, -1])
def test_a_split_below_one_spot_node_is_left_to_the_schema(k: int) -> None:
    # No search for a gpuLimit that could never hold the rest, and no division by k + 1.
    model = {"name": "m", "nodePool": "g5", "onDemandReplicas": 1, "gpus": 1}
    assert _findings([{**SPLIT, "spotPerOnDemand": k, "gpuLimit": 4}], [model]) == []
