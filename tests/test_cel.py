"""CEL rules (x-kubernetes-validations) of the upstream CRD schemas, evaluated with cel-python."""

from __future__ import annotations

import copy
import gc
import json
from pathlib import Path
from typing import Any

import celpy
import pytest
from nimgen.validation.cel import TRANSITION_REASON, CelProgram, CelUnevaluated

REQUIREMENTS = "$.spec.template.spec.requirements"
IN_NEEDS_VALUES = "requirements with operator 'In' must have a value defined"
SINGLE_INTEGER = "requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer value"
ALIAS_FORMAT = "'alias' is improperly formatted, must match the format 'family@version'"
ALIAS_FAMILY = ("family is not supported, must be one of the following: "
                "'al2', 'al2023', 'bottlerocket', 'windows2019', 'windows2022', 'windows2025'")

NODEPOOL: dict[str, Any] = {
    "apiVersion": "karpenter.sh/v1",
    "kind": "NodePool",
    "metadata": {"name": "gpu-l40s"},
    "spec": {
        "template": {
            "metadata": {"labels": {"nvidia.com/gpu.present": "true", "nimgen.io/pool": "gpu-l40s"}},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                "requirements": [
                    {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g6e"]},
                    {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                ],
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
            },
        },
        "limits": {"nvidia.com/gpu": 8},
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m"},
    },
}

EC2NODECLASS: dict[str, Any] = {
    "apiVersion": "karpenter.k8s.aws/v1",
    "kind": "EC2NodeClass",
    "metadata": {"name": "gpu"},
    "spec": {
        "role": "KarpenterNodeRole-nim",
        "amiSelectorTerms": [{"alias": "al2023@latest"}],
        "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "nim"}}],
        "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "nim"}}],
        "blockDeviceMappings": [
            {"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {"volumeSize": "500Gi", "volumeType": "gp3"}},
        ],
        "tags": {"team": "nim"},
    },
}


def load(folder: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def nodepool_program(crd_schemas: Path) -> CelProgram:
    return CelProgram.from_schema(load(crd_schemas, "karpenter.sh/nodepool_v1.json"))


@pytest.fixture(scope="module")
def ec2nodeclass_program(crd_schemas: Path) -> CelProgram:
    return CelProgram.from_schema(load(crd_schemas, "karpenter.k8s.aws/ec2nodeclass_v1.json"))


def inline(*rules: str, props: dict[str, Any] | None = None, **extra: Any) -> CelProgram:
    """A CelProgram for a one-field schema whose field `x` carries the rules."""
    field = {"type": "object", "properties": props or {},
             "x-kubernetes-validations": [{"rule": rule, **extra} for rule in rules]}
    return CelProgram.from_schema({"type": "object", "properties": {"x": field}})


def pairs(program: CelProgram, obj: dict[str, Any]) -> list[tuple[str, str]]:
    violations, _ = program.check(obj)
    return [(v.path, v.message) for v in violations]


def test_valid_nodepool_has_no_violations(nodepool_program: CelProgram) -> None:
    violations, unevaluated = nodepool_program.check(NODEPOOL)
    assert violations == []
    assert {u.reason for u in unevaluated} == {TRANSITION_REASON}


def nodepool_with(change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(NODEPOOL)
    change(obj["spec"]["template"])
    return obj


@pytest.mark.parametrize(("change", "expected"), [
    pytest.param(lambda t: t["spec"]["requirements"][0].update(values=[]),
                 [(REQUIREMENTS, IN_NEEDS_VALUES)], id="in-without-values"),
    pytest.param(lambda t: t["spec"]["requirements"][1].update(values=["1", "2"]),
                 [(REQUIREMENTS, SINGLE_INTEGER)], id="gt-with-two-values"),
    pytest.param(lambda t: t["metadata"]["labels"].update({"karpenter.sh/nodepool": "x"}),
                 [("$.spec.template.metadata.labels", 'label "karpenter.sh/nodepool" is restricted')],
                 id="restricted-template-label"),
    pytest.param(lambda t: t["spec"]["requirements"].append({"key": "kubernetes.io/hostname", "operator": "Exists"}),
                 [(REQUIREMENTS + "[3].key", 'label "kubernetes.io/hostname" is restricted')],
                 id="restricted-requirement-key"),
])
def test_broken_nodepool(nodepool_program: CelProgram, change: Any, expected: list[tuple[str, str]]) -> None:
    assert pairs(nodepool_program, nodepool_with(change)) == expected


def test_evaluation_error_is_a_violation(nodepool_program: CelProgram) -> None:
    """`x.values` on a requirement without values fails evaluating: the API server rejects that too."""
    obj = nodepool_with(lambda t: t["spec"]["requirements"][0].pop("values"))
    [(path, message)] = pairs(nodepool_program, obj)
    assert path == REQUIREMENTS
    assert message.endswith(f"evaluating rule: {IN_NEEDS_VALUES}")
    assert "values" in message


def test_defaults_are_applied_before_rules(nodepool_program: CelProgram) -> None:
    """spec.disruption.budgets defaults to [{nodes: 10%}]; a budget with a schedule but no duration fails."""
    obj = copy.deepcopy(NODEPOOL)
    obj["spec"]["disruption"]["budgets"] = [{"nodes": "10%", "schedule": "@daily"}]
    assert pairs(nodepool_program, obj) == [("$.spec.disruption.budgets", "'schedule' must be set with 'duration'")]


def test_valid_ec2nodeclass_has_no_violations(ec2nodeclass_program: CelProgram) -> None:
    assert ec2nodeclass_program.unevaluated == ()
    assert ec2nodeclass_program.check(EC2NODECLASS) == ([], [])


def ec2nodeclass_with(**spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(EC2NODECLASS)
    obj["spec"].update(spec)
    return obj


def test_ec2nodeclass_role_and_instance_profile(ec2nodeclass_program: CelProgram) -> None:
    obj = ec2nodeclass_with(instanceProfile="KarpenterNodeInstanceProfile")
    assert pairs(ec2nodeclass_program, obj) == [("$.spec", "must specify exactly one of ['role', 'instanceProfile']")]


def test_ec2nodeclass_bogus_alias(ec2nodeclass_program: CelProgram) -> None:
    obj = ec2nodeclass_with(amiSelectorTerms=[{"alias": "bogus"}])
    path = "$.spec.amiSelectorTerms[0].alias"
    assert pairs(ec2nodeclass_program, obj) == [(path, ALIAS_FORMAT), (path, ALIAS_FAMILY)]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"amiSelectorTerms": [{"alias": "windows2022@v20240101"}]},
     [("$.spec.amiSelectorTerms[0].alias", "windows families may only specify version 'latest'")]),
    ({"amiFamily": "Bottlerocket"},
     [("$.spec", "if set, amiFamily must be 'AL2023' or 'Custom' when using an AL2023 alias")]),
    ({"tags": {"kubernetes.io/cluster/nim": "owned"}},
     [("$.spec.tags", "tag contains a restricted tag matching kubernetes.io/cluster/")]),
    ({"kubelet": {"imageGCHighThresholdPercent": 50, "imageGCLowThresholdPercent": 60}},
     [("$.spec.kubelet", "imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent")]),
])
def test_more_ec2nodeclass_rules(ec2nodeclass_program: CelProgram, spec: dict[str, Any],
                                 expected: list[tuple[str, str]]) -> None:
    assert pairs(ec2nodeclass_program, ec2nodeclass_with(**spec)) == expected


def test_transition_rules_are_unevaluated_not_passed(nodepool_program: CelProgram) -> None:
    transition = {u.rule for u in nodepool_program.unevaluated if u.reason == TRANSITION_REASON}
    assert transition == {"has(self.replicas) == has(oldSelf.replicas)",
                          "self.group == oldSelf.group", "self.kind == oldSelf.kind"}
    _, unevaluated = nodepool_program.check(NODEPOOL)
    assert {u.rule for u in unevaluated} == transition

    program = inline("self == oldSelf")  # would fail if it were evaluated with some oldSelf
    assert program.unevaluated == (CelUnevaluated("self == oldSelf", TRANSITION_REASON),)
    assert program.check({"x": {}}) == ([], [CelUnevaluated("self == oldSelf", TRANSITION_REASON)])
    assert program.check({}) == ([], [])  # no value at the node: the rule does not apply at all
    optional = inline("!has(oldSelf.a)", optionalOldSelf=True)
    assert "optionalOldSelf" in optional.unevaluated[0].reason


def test_unsupported_function_is_unevaluated() -> None:
    program = inline("quantity(self.cpu).isGreaterThan(quantity('1'))", "self.names.isSorted()",
                     "sets.contains(self.names, ['a'])", "size(self.names) > 5",
                     props={"cpu": {"type": "string"}, "names": {"type": "array", "items": {"type": "string"}}})
    reasons = {u.rule: u.reason for u in program.unevaluated}
    assert reasons == {
        "quantity(self.cpu).isGreaterThan(quantity('1'))":
            "uses the Kubernetes CEL library functions isGreaterThan, quantity, which cel-python does not provide",
        "self.names.isSorted()": "uses the Kubernetes CEL library function isSorted, which cel-python does not provide",
        "sets.contains(self.names, ['a'])": "uses sets, which is not bound here (only self is)",
    }
    violations, unevaluated = program.check({"x": {"cpu": "500m", "names": ["b", "a"]}})
    assert [v.rule for v in violations] == ["size(self.names) > 5"]  # the supported rule still runs
    assert set(unevaluated) == set(program.unevaluated)


def test_kubernetes_string_functions_and_value_types() -> None:
    program = inline(
        "self.s.find('[0-9]+') == '123' && self.s.find('z') == ''",
        "self.s.split('-') == ['ab', '123', 'C'] && self.s.split('-', 2) == ['ab', '123-C']",
        "self.s.lowerAscii() == 'ab-123-c' && self.s.upperAscii() == 'AB-123-C'",
        "type(self.ratio) == double && type(self.count) == int && self.ratio == 1.0 && self.count == 2",
        "self.__namespace__ == 'nim' && self.max__dash__size == 3 && !has(self.unset)",
        "self.defaulted == 'd'",
        props={"s": {"type": "string"}, "ratio": {"type": "number"}, "count": {"type": "integer"},
               "namespace": {"type": "string"}, "max-size": {"type": "integer"}, "unset": {"type": "string"},
               "defaulted": {"type": "string", "default": "d"}})
    assert program.unevaluated == ()
    assert program.check({"x": {"s": "ab-123-C", "ratio": 1, "count": 2.0, "namespace": "nim", "max-size": 3}}) \
        == ([], [])


def test_rules_compile_once_and_are_reused(crd_schemas: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts real cel-python compile/program calls: none happen in check(), however many objects."""
    calls = {"compile": 0, "program": 0}
    for name in calls:
        real = getattr(celpy.Environment, name)

        def counted(self: celpy.Environment, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return _real(self, *args, **kw)
        monkeypatch.setattr(celpy.Environment, name, counted)

    program = CelProgram.from_schema(load(crd_schemas, "karpenter.k8s.aws/ec2nodeclass_v1.json"))
    assert calls == {"compile": 54, "program": 54}
    gc.collect()
    runners = sum(isinstance(o, celpy.Runner) for o in gc.get_objects())
    objects = [ec2nodeclass_with(tags={"n": str(i)}) for i in range(25)] + [
        ec2nodeclass_with(instanceProfile="p", amiSelectorTerms=[{"alias": f"bogus{i}"}]) for i in range(25)]
    results = [program.check(obj) for obj in objects]
    gc.collect()
    assert calls == {"compile": 54, "program": 54}
    assert sum(isinstance(o, celpy.Runner) for o in gc.get_objects()) == runners
    assert [len(violations) for violations, _ in results] == [0] * 25 + [3] * 25


@pytest.mark.parametrize(("name", "rules", "unevaluated"), [
    ("karpenter.sh/nodepool_v1.json", 20, 3),
    ("karpenter.k8s.aws/ec2nodeclass_v1.json", 54, 0),
    ("argoproj.io/application_v1alpha1.json", 0, 0),
    ("argoproj.io/appproject_v1alpha1.json", 0, 0),
    ("keda.sh/scaledobject_v1alpha1.json", 1, 0),
    ("monitoring.coreos.com/servicemonitor_v1.json", 0, 0),
    ("monitoring.coreos.com/prometheusrule_v1.json", 0, 0),
])
def test_rule_counts(crd_schemas: Path, name: str, rules: int, unevaluated: int) -> None:
    program = CelProgram.from_schema(load(crd_schemas, name))
    assert (len(program.rules), len(program.unevaluated)) == (rules, unevaluated)
    assert all(u.reason == TRANSITION_REASON for u in program.unevaluated)


def test_keda_min_above_max(crd_schemas: Path) -> None:
    program = CelProgram.from_schema(load(crd_schemas, "keda.sh/scaledobject_v1alpha1.json"))
    obj: dict[str, Any] = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "nim"},
           "spec": {"scaleTargetRef": {"name": "nim"}, "minReplicaCount": 5, "maxReplicaCount": 2,
                    "triggers": [{"type": "prometheus", "metadata": {"query": "up"}}]}}
    assert pairs(program, obj) == [("$.spec", "minReplicaCount must be less than or equal to maxReplicaCount")]
    obj["spec"].pop("maxReplicaCount")  # compared with 100 when unset
    assert pairs(program, obj) == []


def test_runtime_gap_in_cel_python_is_unevaluated_once() -> None:
    """int < double is valid Kubernetes CEL; cel-python has no such overload: listed once, never passed."""
    items = {"type": "object", "properties": {"n": {"type": "integer"}},
             "x-kubernetes-validations": [{"rule": "self.n < 1.5"}]}
    program = CelProgram.from_schema({"type": "object", "properties": {"x": {"type": "array", "items": items}}})
    assert program.unevaluated == ()
    violations, unevaluated = program.check({"x": [{"n": 1}, {"n": 2}, {"n": 3}]})
    assert violations == []
    assert [u.rule for u in unevaluated] == ["self.n < 1.5"]
    assert unevaluated[0].reason.startswith("cel-python could not evaluate it: found no matching overload")
