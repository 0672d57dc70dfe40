"""AMI release catalog: which releases ship an image (and its NVIDIA variant) for which Kubernetes version, and
the node-pool check that refuses a pin Karpenter could not resolve."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from conftest import EXAMPLE_NAMES, example_environment
from helpers import VALID, run, tree_digest, write_env
from nimgen import amis
from nimgen.amis import Answer

POOLS = """\
  karpenter:
    nodeRole: KarpenterNodeRole-nim-test
    discoveryTag: nim-test
nodePools:
  - name: a10g
    instanceFamilies: [g5]
    gpuLimit: 8
    amiFamily: {family}
    amiVersion: {version}
"""
AMI_LINE = "environments/test.yaml:14:17: $.nodePools[0].amiVersion: "


def _env(family: str, version: str, kubernetes: str = "1.33", production: bool = False) -> str:
    text = VALID.replace('  kubernetesVersion: "1.33"\n',
                         f'  kubernetesVersion: "{kubernetes}"\n' + POOLS.format(family=family, version=version))
    return text.replace("name: test\n", "name: test\nproduction: true\n", 1) if production else text


def test_catalog_loads_and_is_dated() -> None:
    catalog = amis.catalog()
    assert datetime.date.fromisoformat(catalog.dated) >= datetime.date(2026, 7, 23)  # no older than its sources
    assert set(catalog.families) == {"al2023", "bottlerocket"}
    al2023, bottlerocket = catalog.families["al2023"], catalog.families["bottlerocket"]
    assert "awslabs/amazon-eks-ami" in al2023.source
    assert "bottlerocket-os/" in bottlerocket.source
    assert (al2023.oldest.version, al2023.newest.version) == ("v20240213", "v20260714")
    assert (bottlerocket.oldest.version, bottlerocket.newest.version) == ("v1.18.0", "v1.57.0")
    for family in catalog.families.values():
        keys = [amis.version_key(release.version) for release in family.releases]
        assert keys == sorted(set(keys)), f"{family.name}: releases out of order or repeated"
        assert all(release.nvidia <= release.kubernetes for release in family.releases)
        # The check must answer for every Kubernetes version nimgen supports (1.29 and later).
        covered = set().union(*(release.nvidia for release in family.releases))
        assert {f"1.{minor}" for minor in range(29, 35)} <= covered


@pytest.mark.parametrize(("family", "version", "kubernetes", "gpu", "expected"), [
    # Bottlerocket: 1.33 variants start at v1.39.0; v1.26.2 (2024) ships 1.24 to 1.31.
    ("bottlerocket", "v1.26.2", "1.33", True, Answer.NO_IMAGE),
    ("bottlerocket", "v1.26.2", "1.31", True, Answer.OK),
    ("bottlerocket", "v1.38.0", "1.33", True, Answer.NO_IMAGE),
    ("bottlerocket", "v1.39.0", "1.33", True, Answer.OK),
    ("bottlerocket", "v1.57.0", "1.35", True, Answer.OK),
    ("bottlerocket", "v1.51.0", "1.28", True, Answer.OK),
    ("bottlerocket", "v1.52.0", "1.28", True, Answer.NO_IMAGE),  # aws-k8s-1.28 dropped
    ("bottlerocket", "v1.39.2", "1.33", True, Answer.NO_SUCH_RELEASE),
    ("bottlerocket", "v1.58.0", "1.33", True, Answer.UNKNOWN),  # newer than the catalog
    ("bottlerocket", "v1.17.0", "1.28", True, Answer.UNKNOWN),  # older than the catalog
    # AL2023: 1.33 from v20250519; NVIDIA AMIs from v20241024.
    ("al2023", "v20251112", "1.33", True, Answer.OK),
    ("al2023", "v20250514", "1.33", True, Answer.NO_IMAGE),
    ("al2023", "v20250519", "1.33", True, Answer.OK),
    ("al2023", "v20240910", "1.30", True, Answer.NO_NVIDIA),
    ("al2023", "v20240910", "1.30", False, Answer.OK),
    ("al2023", "v20241024", "1.31", True, Answer.OK),
    ("al2023", "v20260403", "1.29", True, Answer.NO_IMAGE),  # 1.29 dropped
    ("al2023", "v20251111", "1.33", True, Answer.NO_SUCH_RELEASE),
    ("al2023", "v20260128", "1.33", True, Answer.NO_SUCH_RELEASE),  # abandoned upstream
    ("al2023", "v20250610", "1.33", True, Answer.UNKNOWN),  # tagged, no release notes
    ("al2023", "v20260724", "1.33", True, Answer.UNKNOWN),  # newer than the catalog
    ("al2023", "v20231220", "1.28", True, Answer.UNKNOWN),  # older than the catalog
    ("ubuntu", "v20251112", "1.33", True, Answer.UNKNOWN),
])
def test_lookup_answers(family: str, version: str, kubernetes: str, gpu: bool, expected: Answer) -> None:
    assert amis.lookup(family, version, kubernetes, gpu=gpu).answer is expected


def test_lookup_returns_the_listed_release() -> None:
    found = amis.lookup("bottlerocket", "v1.26.2", "1.33")
    assert found.release is not None and found.release.version == "v1.26.2"
    assert found.release.nvidia == {f"1.{minor}" for minor in range(24, 32)}
    assert amis.lookup("bottlerocket", "v1.39.2", "1.33").release is None


@pytest.mark.parametrize(("family", "version", "kubernetes", "expected"), [
    ("bottlerocket", "v1.26.2", "1.33", amis.Pins("bottlerocket", "v1.39.0", "v1.57.0", True)),
    ("bottlerocket", "v1.55.0", "1.28", amis.Pins("bottlerocket", "v1.18.0", "v1.51.0", False)),
    ("al2023", "v20250505", "1.33", amis.Pins("al2023", "v20250519", "v20260714", True)),
    ("al2023", "v20240910", "1.30", amis.Pins("al2023", "v20241024", "v20260714", True)),
    ("al2023", "v20260415", "1.29", amis.Pins("al2023", "v20241024", "v20260318", False)),
    ("bottlerocket", "v1.57.0", "1.37", None),
])
def test_nearest_pins(family: str, version: str, kubernetes: str, expected: amis.Pins | None) -> None:
    assert amis.nearest_pins(family, version, kubernetes) == expected


def test_nearest_pins_picks_the_run_closest_to_the_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    def release(version: str, *minors: str) -> amis.Release:
        return amis.Release("bottlerocket", version, frozenset(minors), frozenset(minors))

    releases = (release("v1.1.0", "1.30"), release("v1.2.0"), release("v1.3.0"), release("v1.4.0", "1.30"),
                release("v1.5.0", "1.30"), release("v1.6.0"))
    fake = amis.Catalog("2026-12-01", {"bottlerocket": amis.Family("bottlerocket", "test", releases, frozenset())})
    monkeypatch.setattr(amis, "catalog", lambda: fake)
    assert amis.nearest_pins("bottlerocket", "v1.3.0", "1.30") == amis.Pins("bottlerocket", "v1.4.0", "v1.5.0", False)
    assert amis.nearest_pins("bottlerocket", "v1.2.0", "1.30") == amis.Pins("bottlerocket", "v1.1.0", "v1.1.0", False)
    assert amis.nearest_pins("bottlerocket", "v1.9.0", "1.30") == amis.Pins("bottlerocket", "v1.4.0", "v1.5.0", False)


def test_image_names() -> None:
    assert amis.image_name("bottlerocket", "1.33") == "aws-k8s-1.33-nvidia"
    assert amis.image_name("bottlerocket", "1.33", gpu=False) == "aws-k8s-1.33"
    assert amis.image_name("al2023", "1.33") == "amazon-eks-node-al2023-x86_64-nvidia-1.33"


def _refused(tmp_path: Path, text: str) -> str:
    env = write_env(tmp_path, text)
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert tree_digest(tmp_path) == before, "a refused render must not write anything"
    return result.output


@pytest.mark.parametrize(("family", "version", "kubernetes", "expected"), [
    pytest.param(
        "bottlerocket", "v1.26.2", "1.33",
        AMI_LINE + "node pool 'a10g' pins bottlerocket v1.26.2, which ships no aws-k8s-1.33-nvidia image; Karpenter "
        "would find no AMI for Kubernetes 1.33 and the EC2NodeClass would never become Ready\n"
        "    hint: pin bottlerocket v1.39.0 or later (ships aws-k8s-1.33-nvidia; newest in nimgen's AMI catalog: "
        "v1.57.0)",
        id="bottlerocket-2024-release-on-1.33"),
    pytest.param(
        "al2023", "v20250505", "1.33",
        AMI_LINE + "node pool 'a10g' pins al2023 v20250505, which ships no amazon-eks-node-al2023-x86_64-nvidia-1.33 "
        "image; Karpenter would find no AMI for Kubernetes 1.33 and the EC2NodeClass would never become Ready\n"
        "    hint: pin al2023 v20250519 or later (ships amazon-eks-node-al2023-x86_64-nvidia-1.33; newest in "
        "nimgen's AMI catalog: v20260714)",
        id="al2023-older-than-the-cluster"),
    pytest.param(
        "al2023", "v20240910", "1.30",
        AMI_LINE + "node pool 'a10g' pins al2023 v20240910, which has a Kubernetes 1.30 image but no NVIDIA variant "
        "(amazon-eks-node-al2023-x86_64-nvidia-1.30); Karpenter would find no AMI for the pool's GPU instances\n"
        "    hint: pin al2023 v20241024 or later (ships amazon-eks-node-al2023-x86_64-nvidia-1.30; newest in "
        "nimgen's AMI catalog: v20260714)",
        id="al2023-before-nvidia-amis"),
    pytest.param(
        "al2023", "v20260415", "1.29",
        AMI_LINE + "node pool 'a10g' pins al2023 v20260415, which ships no amazon-eks-node-al2023-x86_64-nvidia-1.29 "
        "image; Karpenter would find no AMI for Kubernetes 1.29 and the EC2NodeClass would never become Ready\n"
        "    hint: pin al2023 v20241024 to v20260318 (the releases that ship "
        "amazon-eks-node-al2023-x86_64-nvidia-1.29)",
        id="al2023-newer-than-the-cluster"),
    pytest.param(
        "bottlerocket", "v1.39.2", "1.33",
        AMI_LINE + "node pool 'a10g' pins bottlerocket v1.39.2, which is not a bottlerocket release (nimgen's AMI "
        "catalog lists every one from v1.18.0 to v1.57.0)\n"
        "    hint: pin bottlerocket v1.39.0 or later (ships aws-k8s-1.33-nvidia; newest in nimgen's AMI catalog: "
        "v1.57.0)",
        id="no-such-release"),
])
def test_pin_without_an_image_is_refused(tmp_path: Path, family: str, version: str, kubernetes: str,
                                         expected: str) -> None:
    output = _refused(tmp_path, _env(family, version, kubernetes))
    assert expected in output
    assert output.count("amiVersion") == 1


def test_pin_the_catalog_does_not_list_is_a_warning(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, _env("bottlerocket", "v1.61.0")))
    assert result.exit_code == 0, result.output
    assert (AMI_LINE + "warning: nimgen's AMI catalog (dated 2026-12-01) does not list bottlerocket v1.61.0; "
            "whether it ships aws-k8s-1.33-nvidia is not checked\n"
            "    hint: check its release notes for aws-k8s-1.33-nvidia and add it to generator/nimgen/catalog/amis.yaml, "
            "or pin bottlerocket v1.39.0 or later (ships aws-k8s-1.33-nvidia; newest in nimgen's AMI catalog: v1.57.0)"
            ) in result.output
    assert (tmp_path / "argocd/test/apps/platform/gpu-nodepools.yaml").exists()


def test_hints_when_no_catalogued_release_ships_the_image(tmp_path: Path) -> None:
    # No Bottlerocket release up to v1.57.0 ships a Kubernetes 1.36 variant (v1.61.0 adds it).
    listed = _refused(tmp_path, _env("bottlerocket", "v1.57.0", "1.36"))
    assert ("    hint: no bottlerocket release in nimgen's AMI catalog ships aws-k8s-1.36-nvidia; pin a newer release "
            "once it is added to generator/nimgen/catalog/amis.yaml, or use the other amiFamily") in listed
    newer = run("render", write_env(tmp_path / "newer", _env("bottlerocket", "v1.61.0", "1.36")))
    assert newer.exit_code == 0, newer.output
    assert (AMI_LINE + "warning: nimgen's AMI catalog (dated 2026-12-01) does not list bottlerocket v1.61.0; "
            "whether it ships aws-k8s-1.36-nvidia is not checked\n"
            "    hint: check its release notes for aws-k8s-1.36-nvidia and add it to "
            "generator/nimgen/catalog/amis.yaml\n") in newer.output


@pytest.mark.parametrize(("family", "version"), [("al2023", "v20251112"), ("bottlerocket", "v1.57.0"),
                                                 ("al2023", "latest"), ("bottlerocket", "latest")])
def test_pins_that_ship_the_image_and_latest_pass(tmp_path: Path, family: str, version: str) -> None:
    result = run("render", write_env(tmp_path, _env(family, version)))
    assert result.exit_code == 0, result.output
    assert "amiVersion" not in result.output


def test_latest_is_not_looked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> amis.Lookup:
        raise AssertionError(f"latest must not be looked up: {args}")

    monkeypatch.setattr(amis, "lookup", refuse)
    result = run("render", write_env(tmp_path, _env("bottlerocket", "latest")))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_committed_examples_have_no_ami_problem(env_name: str) -> None:
    env = example_environment(env_name)  # raises on any error
    assert [w for w in env.warnings if w.path.endswith(".amiVersion")] == []
    for pool in env.node_pools:
        family, _, version = pool.ami_alias.partition("@")
        if version != "latest":
            assert amis.lookup(family, version, env.kubernetes_version).answer is Answer.OK, pool.ami_alias
