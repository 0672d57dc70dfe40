"""Reserved capacity: pools that name On-Demand Capacity Reservations or Capacity Blocks, rendered as
EC2NodeClass capacityReservationSelectorTerms, checked against what they hold, and priced by plan."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import example_environment
from helpers import VALID, run, tree_digest, write_env
from nimgen import helm
from nimgen.commands.plan import as_text, plan
from nimgen.components import reservations
from nimgen.components.nodepools import nodepool_values
from nimgen.environment.load import load_environment
from nimgen.validation.cel import CelProgram
from nimgen.yamlio import load_all_plain

CLUSTER = '  kubernetesVersion: "1.33"\n'
KARPENTER = "  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}\n"
RESERVATION = "      - id: cr-0123456789abcdef0\n        instanceType: p5.48xlarge\n        instances: 2\n"


def environment(reservations: str = RESERVATION, types: str = "[reserved, on-demand]", limit: int = 24,
                model: str = "    gpus: 8\n    replicas: {min: 1, max: 2}\n", rate: str = "") -> str:
    pool = (f"nodePools:\n  - name: h100\n    instanceTypes: [p5.48xlarge]\n    capacityTypes: {types}\n"
            f"    gpuLimit: {limit}\n    amiVersion: v20251112\n{rate}")
    if reservations:
        pool += "    capacityReservations:\n" + reservations
    text = VALID.replace(CLUSTER, CLUSTER + KARPENTER + pool).replace("nodePool: a10g", "nodePool: h100")
    text = text.replace("llama3-8b-instruct:1.0.3", "llama-3.1-70b-instruct:1.3.3")
    return text + model + '    resources: {cpu: "32", memory: 256Gi}\n'


def test_prod_renders_its_reservation(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    env = example_environment("prod")
    values = nodepool_values(env)
    assert values["pools"]["h100"]["capacityReservations"] == [{"id": "cr-0123456789abcdef0"}]
    assert values["pools"]["h100"]["capacityTypes"] == ["reserved", "on-demand"]
    assert "capacityReservations" not in values["pools"]["a10g"]
    files = helm_engine.template(rendered_repo / "charts" / "gpu-nodepools", values, release="gpu-nodepools",
                                 namespace="kube-system", kube_version="1.33")
    docs = [d for path, text in files.items() if path.endswith(".yaml") for d in load_all_plain(text) if d]
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "EC2NodeClass"}
    assert classes["h100"]["spec"]["capacityReservationSelectorTerms"] == [{"id": "cr-0123456789abcdef0"}]
    assert "capacityReservationSelectorTerms" not in classes["a10g"]["spec"]
    [requirement] = [r for d in docs if d["kind"] == "NodePool" and d["metadata"]["name"] == "h100"
                     for r in d["spec"]["template"]["spec"]["requirements"] if r["key"] == "karpenter.sh/capacity-type"]
    assert requirement == {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["reserved", "on-demand"]}


def test_reservations_by_tags_with_owner(tmp_path: Path, helm_engine: helm.Engine, crd_schemas: Path) -> None:
    tagged = ("      - tags: {team: ml, purpose: capacity-block}\n        ownerID: \"123456789012\"\n"
              "        instanceType: p5.48xlarge\n        instances: 1\n" + RESERVATION)
    env = load_environment(write_env(tmp_path, environment(tagged)), tmp_path)
    chart = Path(__file__).resolve().parents[1] / "generator" / "nimgen" / "charts" / "gpu-nodepools"
    files = helm_engine.template(chart, nodepool_values(env), release="gpu-nodepools", namespace="kube-system",
                                 kube_version="1.33")
    [node_class] = [d for path, t in files.items() if path.endswith(".yaml") for d in load_all_plain(t)
                    if d and d["kind"] == "EC2NodeClass"]
    terms = node_class["spec"]["capacityReservationSelectorTerms"]
    assert terms == [{"tags": {"purpose": "capacity-block", "team": "ml"}, "ownerID": "123456789012"},
                     {"id": "cr-0123456789abcdef0"}]
    # Upstream's schema and its CEL rules accept what nimgen renders...
    schema = json.loads((crd_schemas / "karpenter.k8s.aws" / "ec2nodeclass_v1.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(node_class)
    program = CelProgram.from_schema(schema)
    violations, _ = program.check(node_class)
    assert violations == []
    # ... and the CEL rule nimgen's own schema mirrors refuses an id beside other fields.
    broken = copy.deepcopy(node_class)
    broken["spec"]["capacityReservationSelectorTerms"] = [{"id": "cr-0123456789abcdef0", "tags": {"a": "b"}}]
    violations, _ = program.check(broken)
    assert [v.message for v in violations] == [
        "'id' is mutually exclusive, cannot be set along with other fields in a capacity reservation selector term"]


@pytest.mark.parametrize(("term", "message"), [
    ("      - id: cr-0123456789abcdef0\n        tags: {a: b}\n        instanceType: p5.48xlarge\n        instances: 1\n",
     "$.nodePools[0].capacityReservations[0]"),
    ("      - instanceType: p5.48xlarge\n        instances: 1\n", "$.nodePools[0].capacityReservations[0]"),
    ("      - id: cr-0123456789abcdef0\n        instances: 1\n",
     "$.nodePools[0].capacityReservations[0].instanceType"),
    ("      - id: reservation-1\n        instanceType: p5.48xlarge\n        instances: 1\n",
     "$.nodePools[0].capacityReservations[0].id"),
], ids=["id-and-tags", "neither", "no-instance-type", "bad-id"])
def test_malformed_reservations_are_refused(tmp_path: Path, term: str, message: str) -> None:
    result = run("render", write_env(tmp_path, environment(term)))
    assert result.exit_code == 1
    assert f"{message}:" in result.output and "Traceback" not in result.output


def test_reserved_without_reservations_is_refused(tmp_path: Path) -> None:
    env = write_env(tmp_path, environment(""))
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1
    assert ("$.nodePools[0].capacityTypes: node pool 'h100' buys capacity type reserved but names no "
            "capacityReservations: Karpenter launches reserved nodes only into reservations its EC2NodeClass selects\n"
            "    hint: add capacityReservations (by id or tags, with instanceType and instances), or drop reserved"
            ) in result.output
    assert tree_digest(tmp_path) == before


def test_reservations_without_reserved_are_refused(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, environment(types="[on-demand]")))
    assert result.exit_code == 1
    assert ("$.nodePools[0].capacityTypes: node pool 'h100' names capacityReservations but does not buy capacity type "
            "reserved: Karpenter would never launch into them\n    hint: add reserved to capacityTypes") in result.output


def test_reservation_of_an_instance_the_pool_never_launches(tmp_path: Path) -> None:
    other = RESERVATION.replace("p5.48xlarge", "p4d.24xlarge")
    result = run("render", write_env(tmp_path, environment(other)))
    assert result.exit_code == 1
    assert ("$.nodePools[0].capacityReservations[0].instanceType: the reservation holds p4d.24xlarge, which node pool "
            "'h100' never launches (p5.48xlarge)") in result.output


def test_reservation_of_an_unknown_instance_type(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, environment(RESERVATION.replace("p5.48xlarge", "x9.huge"))))
    assert result.exit_code == 1
    assert ("$.nodePools[0].capacityReservations[0].instanceType: instance type 'x9.huge' is not in nimgen's GPU "
            "instance catalog") in result.output


@pytest.mark.parametrize(("replicas", "refused"), [("{min: 1, max: 2}", False), ("{min: 1, max: 3}", True)])
def test_a_reserved_only_pool_holds_its_reservations(tmp_path: Path, replicas: str, refused: bool) -> None:
    text = environment(types="[reserved]", model=f"    gpus: 8\n    replicas: {replicas}\n")
    result = run("render", write_env(tmp_path, text))
    assert (result.exit_code == 1) is refused, result.output
    assert ("$.nodePools[0].capacityReservations: node pool 'h100' buys only reserved capacity, whose reservations "
            "hold 16 GPUs (2 x p5.48xlarge), but its models may need 24 at replicas.max plus rollout surge"
            in result.output) is refused


def test_a_pool_with_on_demand_overflow_may_outgrow_its_reservations(tmp_path: Path) -> None:
    text = environment(model="    gpus: 8\n    replicas: {min: 1, max: 3}\n")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


# ------------------------------------------------------------------ plan


def _plan(tmp_path: Path, text: str) -> Any:
    return plan(load_environment(write_env(tmp_path, text), tmp_path))


def test_plan_prices_paid_reservations_at_zero_and_the_overflow_on_demand(tmp_path: Path) -> None:
    result = _plan(tmp_path, environment(model="    gpus: 8\n    replicas: {min: 1, max: 3}\n"))
    [row] = result.models
    assert (row.instance, row.reserved_min, row.reserved_max) == ("p5.48xlarge", 1, 2)
    # p5.48xlarge lists at 55.04 $/h On-Demand in us-west-2: one replica of three overflows the reservation.
    assert (row.on_demand_usd_min, row.on_demand_usd_max) == (0.0, 55.04)
    [pool] = result.pools
    assert (pool.reserved_instances, pool.reserved_hourly_usd) == (2, 0.0)
    assert "h100  8-24  24         2 at 0.00 $/h  0.00-55.04" in as_text(result)


def test_plan_prices_reservations_at_their_rate(tmp_path: Path) -> None:
    result = _plan(tmp_path, environment(rate="    reservedHourlyUsd: 31.5\n"))
    [row] = result.models
    assert (row.on_demand_usd_min, row.on_demand_usd_max) == (31.5, 63.0)


def test_models_share_a_pools_reservations_in_order(tmp_path: Path) -> None:
    second = ("  - name: second\n    image: nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3\n    nodePool: h100\n"
              "    gpus: 8\n    replicas: {min: 1, max: 1}\n    resources: {cpu: \"32\", memory: 256Gi}\n")
    result = _plan(tmp_path, environment(limit=32) + second)
    first, other = result.models
    assert (first.reserved_min, first.reserved_max, other.reserved_min, other.reserved_max) == (1, 2, 1, 0)
    assert (other.on_demand_usd_min, other.on_demand_usd_max) == (0.0, 55.04)


def test_a_reserved_only_pool_has_no_overflow_price(tmp_path: Path) -> None:
    [row] = _plan(tmp_path, environment(types="[reserved]")).models
    assert (row.on_demand_usd_min, row.on_demand_usd_max) == (0.0, 0.0)


def test_reserved_only_pool_counts_every_reservation_surge_and_default(tmp_path: Path) -> None:
    two = RESERVATION + "      - tags: {team: ml}\n        instanceType: p5.48xlarge\n        instances: 1\n"
    surge = ("    gpus: 8\n    replicas: {min: 2, max: 3}\n    workload: Deployment\n    cache: {type: emptyDir}\n"
             "    rollout: {surge: 1}\n")
    output = run("render", write_env(tmp_path, environment(two, types="[reserved]", limit=32, model=surge))).output
    # 3 reserved instances hold 24 GPUs; 3 replicas plus one surge need 32.
    assert ("$.nodePools[0].capacityReservations: node pool 'h100' buys only reserved capacity, whose reservations "
            "hold 24 GPUs (2 x p5.48xlarge, 1 x p5.48xlarge), but its models may need 32 at replicas.max plus rollout "
            "surge\n    hint: add on-demand (or spot) to capacityTypes for the overflow, reserve more, or lower "
            "replicas.max") in output


def test_reserved_only_pool_defaults_to_one_replica(tmp_path: Path) -> None:
    one = RESERVATION.replace("instances: 2", "instances: 1")
    # No replicas and a default of one GPU... of eight the model says it needs: 8 GPUs fit one reserved p5.
    text = environment(one, types="[reserved]", model="    gpus: 8\n")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


def test_only_the_pools_own_models_count(tmp_path: Path) -> None:
    other_pool = "  - name: spare\n    instanceTypes: [p5.48xlarge]\n    gpuLimit: 64\n    amiVersion: v20251112\n"
    other_model = ("  - name: other\n    image: nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3\n    nodePool: spare\n"
                   "    gpus: 8\n    replicas: {min: 1, max: 8}\n    resources: {cpu: \"32\", memory: 256Gi}\n")
    text = environment(types="[reserved]").replace("nodePools:\n", "nodePools:\n" + other_pool) + other_model
    assert run("render", write_env(tmp_path, text)).exit_code == 0, run("render", write_env(tmp_path, text)).output


def test_a_family_pool_never_launching_the_reserved_type(tmp_path: Path) -> None:
    text = environment(RESERVATION.replace("p5.48xlarge", "p4d.24xlarge")).replace(
        "instanceTypes: [p5.48xlarge]", "instanceFamilies: [p5]")
    output = run("render", write_env(tmp_path, text)).output
    assert ("$.nodePools[0].capacityReservations[0].instanceType: the reservation holds p4d.24xlarge, which node pool "
            "'h100' never launches (p5.48xlarge)\n    hint: add its type or family to the pool's instanceTypes or "
            "instanceFamilies") in output


def pools_text(*pools: str) -> str:
    """VALID on several pools (the model on the first), each pool given as its lines after `- name:`."""
    body = "".join(f"  - name: {pool}" for pool in pools)
    return VALID.replace(CLUSTER, CLUSTER + KARPENTER + "nodePools:\n" + body).replace("nodePool: a10g", "nodePool: h100")


P5 = "    instanceTypes: [p5.48xlarge]\n    gpuLimit: 16\n    amiVersion: v20251112\n"


def test_every_pool_is_checked_whatever_the_one_before(tmp_path: Path) -> None:
    text = pools_text(
        "h100\n" + P5 + "    capacityTypes: [reserved]\n",  # reserved, no reservations
        "second\n" + P5 + "    capacityTypes: [on-demand]\n    capacityReservations:\n" + RESERVATION,  # not reserved
        "third\n" + P5 + "    capacityTypes: [reserved]\n    capacityReservations:\n"
        + RESERVATION.replace("p5.48xlarge", "x9.huge"),  # reserved-only, of an unknown type
        "fourth\n" + P5 + "    capacityTypes: [reserved, on-demand]\n    capacityReservations:\n"
        "      - junk\n" + RESERVATION.replace("p5.48xlarge", "g5.xlarge"),  # a malformed item, then a wrong type
    )
    output = run("render", write_env(tmp_path, text)).output
    assert "$.nodePools[0].capacityTypes: node pool 'h100' buys capacity type reserved but names no" in output
    assert "$.nodePools[1].capacityTypes: node pool 'second' names capacityReservations but does not buy" in output
    assert ("$.nodePools[2].capacityReservations[0].instanceType: instance type 'x9.huge' is not in nimgen's GPU "
            "instance catalog\n    hint: name the GPU instance type the reservation holds, e.g. p5.48xlarge") in output
    assert "$.nodePools[3].capacityReservations[0]: expected object" in output
    assert ("$.nodePools[3].capacityReservations[1].instanceType: the reservation holds g5.xlarge, which node pool "
            "'fourth' never launches (p5.48xlarge)") in output


def test_a_model_without_replicas_or_gpus_holds_one_gpu_of_a_reserved_only_pool() -> None:
    pool = {"name": "a10g", "instanceTypes": ["g5.xlarge"], "capacityTypes": ["reserved"],
            "capacityReservations": [{"id": "cr-0123456789abcdef0", "instanceType": "g5.xlarge", "instances": 1}]}

    def findings(models: list[dict[str, Any]]) -> list[str]:
        found: list[str] = []
        reservations.check({"nodePools": [pool]}, models, lambda path, message, hint="", **_: found.append(message))
        return found

    assert findings([{"name": "one", "nodePool": "a10g"}]) == []
    assert findings([{"name": "one", "nodePool": "a10g"}, {"name": "two", "nodePool": "a10g"}]) == [
        ("node pool 'a10g' buys only reserved capacity, whose reservations hold 1 GPUs (1 x g5.xlarge), but its models "
        "may need 2 at replicas.max plus rollout surge")]


def test_a_reservation_outside_the_pool_names_every_type_it_launches() -> None:
    # A pool of the wrong shape (a schema error of its own) comes first: the pools after it are still checked.
    pool = {"name": "l40s", "instanceTypes": ["g6e.xlarge", "g6e.2xlarge"], "capacityTypes": ["reserved"],
            "capacityReservations": [{"id": "cr-0123456789abcdef0", "instanceType": "p5.48xlarge", "instances": 1}]}
    found: list[tuple[Any, ...]] = []
    reservations.check({"nodePools": ["l4", pool]}, [], lambda path, message, hint="", **_: found.append((path, message)))
    assert found == [(["nodePools", 1, "capacityReservations", 0, "instanceType"], ("the reservation holds p5.48xlarge, "
                      "which node pool 'l40s' never launches (g6e.2xlarge, g6e.xlarge)"))]
