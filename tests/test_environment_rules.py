"""The environment's cross-field rules one by one, on plain documents: name lengths and versions at their
boundaries, reserved namespaces, prerequisites' scopes, caches, literal secrets, and documents of the wrong shape."""

from __future__ import annotations

from typing import Any

import pytest
from nimgen.environment.checks import environment_problems
from nimgen.errors import Location

FILE = Location("environments/test.yaml", 1, 1)
IMAGE = "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3"


def document(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "test", "cluster": {"name": "c", "region": "us-west-2", "kubernetesVersion": "1.33"},
                            "gitops": {"repoURL": "https://github.com/example/nim-gitops.git"},
                            "models": [{"name": "m", "image": IMAGE, "nodePool": "p"}]}
    return {**base, **fields}


def problems(doc: dict[str, Any], *, schema_valid: bool = True) -> list[tuple[str, str, str]]:
    models = doc.get("models") if isinstance(doc.get("models"), list) else []
    return [(p.path, p.message, p.hint) for p in environment_problems(doc, models, FILE, schema_valid=schema_valid)]


def test_an_environment_name_leaves_room_for_its_platform_project() -> None:
    assert problems(document(name="a" * 54)) == []
    assert problems(document(name="a" * 55)) == [
        ("$.name", f"name is 55 characters; the AppProject '{'a' * 55}-platform' would pass 63",
         "shorten it to at most 54 characters")]


def test_kubernetes_1_29_is_the_oldest_supported() -> None:
    assert problems(document(cluster={"kubernetesVersion": "1.29"})) == []
    assert problems(document(cluster={"kubernetesVersion": "1.28"})) == [
        ("$.cluster.kubernetesVersion", "Kubernetes 1.28 is older than the oldest version nimgen supports (1.29)",
         "upgrade the cluster (EKS standard support covers recent versions only)")]


def test_a_model_name_may_take_52_characters() -> None:
    assert problems(document(models=[{"name": "m" * 52, "image": IMAGE, "nodePool": "p"}])) == []
    [(path, message, _)] = problems(document(models=[{"name": "m" * 53, "image": IMAGE, "nodePool": "p"}]))
    assert (path, message[:19]) == ("$.models[0].name", "name is 53 characte")


def test_a_model_in_argo_cds_namespace_by_default_is_refused_where_it_is() -> None:
    # The model says no namespace: the finding points at the model, and names the default it runs in.
    [(path, message, _)] = problems(document(gitops={"namespace": "nim"}))
    assert (path, message) == ("$.models[0]", "model namespace 'nim' is reserved")


def test_without_gitops_argo_cd_runs_in_argocd() -> None:
    model = {"name": "m", "image": IMAGE, "nodePool": "p", "namespace": "argocd"}
    [(path, message, _)] = problems(document(gitops=None, models=[model]))
    assert (path, message) == ("$.models[0].namespace", "model namespace 'argocd' is reserved")


def test_a_model_without_name_or_pool_is_named_by_a_question_mark() -> None:
    assert problems(document(models=[{"image": IMAGE}]), schema_valid=False) == [
        ("$.models[0]", "model '?' has no nodePool", "set nodePool on the model or in modelDefaults")]


def test_prerequisites_name_a_namespace_exactly_when_their_kind_lives_in_one() -> None:
    # An item of the wrong shape (the schema's error) comes first: the items after it are still checked.
    items = ["junk", {"kind": "ConfigMap", "namespace": "a"}, {"kind": "StorageClass"},
             {"kind": "Secret"}, {"kind": "PriorityClass", "namespace": "a"}]
    assert problems(document(prerequisites=items)) == [
        ("$.prerequisites[3]", "a Secret lives in a namespace: say which", "add namespace: <name>"),
        ("$.prerequisites[4].namespace", "a PriorityClass is cluster-scoped: it has no namespace", "remove namespace")]


@pytest.mark.parametrize(("cache", "expected"), [
    ({"type": "existingClaim", "claimName": "models"}, []),
    ({"type": "existingClaim"}, [("$.models[0].cache", "cache type existingClaim needs claimName",
                                  "name the ReadWriteMany PersistentVolumeClaim to mount")]),
    ({"type": "emptyDir", "claimName": "models"},
     [("$.models[0].cache.claimName", "claimName is used only with cache type existingClaim (type is emptyDir)",
       "remove claimName, or set type: existingClaim to mount that claim")]),
])
def test_a_claim_name_goes_with_an_existing_claim_only(cache: dict[str, Any], expected: list[Any]) -> None:
    assert problems(document(models=[{"name": "m", "image": IMAGE, "nodePool": "p", "cache": cache}])) == expected


def test_a_literal_secret_without_a_hint_of_its_own_gets_the_general_one() -> None:
    assert problems(document(registry={"password": "Zq8#kLm2$vXr9!pT"})) == [
        ("$.registry.password", ("a literal value under 'password' is in the environment file; it would be committed "
         "to Git"), ("remove it and rotate the credential; reference a Secret instead (secretEnv, ngc.apiKeySecret, "
         "ngc.externalSecret for AWS Secrets Manager)"))]


def test_a_document_without_locations_puts_every_problem_at_the_files_start() -> None:
    # A key-located problem (the variable's own name) and a path-located one.
    model = {"name": "m", "image": IMAGE, "nodePool": "p", "env": {"NGC_API_KEY": "x"}}
    found = environment_problems(document(name="a" * 55, models=[model]), [model], FILE, schema_valid=True)
    assert [(p.path, p.location) for p in found] == [("$.name", FILE), ("$.models[0].env.NGC_API_KEY", FILE)]


def test_a_document_of_the_wrong_shape_is_checked_as_far_as_it_goes() -> None:
    doc = document(name=5, nodePools=["junk", {"name": "p", "instanceFamilies": ["g5"], "gpuLimit": 4}])
    assert [path for path, _, _ in problems(doc, schema_valid=False)] == ["$.cluster"]  # nodePools without cluster.karpenter


def test_a_url_with_credentials_gets_its_own_hint() -> None:
    [(path, _, hint)] = problems(document(gitops={"repoURL": "https://user:s3cr3tpassw0rd@github.com/example/x.git"}))
    assert path == "$.gitops.repoURL"
    assert hint.startswith("remove the 'user[:password]@' part from the URL and rotate the credential")


def test_a_model_named_like_a_platform_application_is_refused_whatever_the_environments_name() -> None:
    assert problems(document(name=5, models=[{"name": "keda", "image": IMAGE, "nodePool": "p"}]), schema_valid=False) == [
        ("$.models[0].name", "model name 'keda' is also the name of the platform Application keda",
         "Argo CD would see two Applications with one name; rename the model")]


HINT = ("the schema accepts this environment, so this is a nimgen bug: report it with the file; nothing was rendered")


def test_a_check_that_stops_on_a_document_the_schema_accepts_is_an_error_where_it_stopped() -> None:
    # The schema refuses these shapes; were it to let one through, the checks that trip over it say so.
    doc = document(name=5, models=[{"image": IMAGE, "nodePool": "p"}], nodePools=[{"gpuLimit": 4}],
                   cluster={"name": "c", "karpenter": {}})
    assert [(path, message, hint) for path, message, hint in problems(doc) if hint == HINT] == [
        ("$", "check could not finish (checks.environment_level: TypeError object of type 'int' has no len())", HINT),
        ("$.nodePools[0]", "check could not finish (poolchecks.pool: KeyError 'name')", HINT),
        ("$.models[0]", "check could not finish (checks.identity: KeyError 'name')", HINT),
        ("$.nodePools", "check could not finish (poolchecks.pool_capacity: KeyError 'name')", HINT)]
    assert all(hint != HINT for _, _, hint in problems(doc, schema_valid=False))


def test_each_model_check_that_stops_says_which_model_it_stopped_on() -> None:
    # One model of a wrong shape per check (the schema refuses each): every stop is placed at its model.
    pool = {"name": "p", "instanceFamilies": ["g5"], "gpuLimit": 64, "amiVersion": "v20251112"}
    models = [
        {"name": "a", "image": IMAGE, "nodePool": "p", "namespace": ["x"]},
        {"name": "b", "image": IMAGE, "nodePool": ["p"]},
        {"name": "c", "image": 5, "nodePool": "p"},
        {"name": "d", "image": IMAGE, "nodePool": "p", "cacheWarmup": True, "cache": "x"},
        {"name": "e", "image": IMAGE, "nodePool": "p", "gpus": "two"},
    ]
    doc = document(models=models, nodePools=[pool], storage={"modelCache": {"fileSystemId": "fs-1"}},
                   cluster={"name": "c", "region": "us-west-2", "kubernetesVersion": "1.33",
                            "karpenter": {"nodeRole": "r", "discoveryTag": "t"}})
    assert [(path, message) for path, message, hint in problems(doc) if hint == HINT] == [
        ("$", "check could not finish (models.check: TypeError unhashable type: 'list')"),
        ("$.models[0]", "check could not finish (checks.namespace: TypeError unhashable type: 'list')"),
        ("$.models[1]", "check could not finish (poolchecks.pool_exists: TypeError unhashable type: 'list')"),
        ("$.models[3]", ("check could not finish (checks.cache_problems: TypeError string indices must be integers, "
                        "not 'str')")),
        ("$.models[2]", "check could not finish (checks.efs_read_time: TypeError object of type 'int' has no len())"),
        ("$.models[3]", ("check could not finish (checks.warmup_needs_shared_cache: AttributeError 'str' object has "
                        "no attribute 'get')")),
        ("$.nodePools", ("check could not finish (poolchecks.pool_capacity: ValueError invalid literal for int() with "
                        "base 10: 'two')")),
        ("$.models[2]", "check could not finish (poolchecks.gpu_fit: TypeError object of type 'int' has no len())"),
        ("$.models[4]", ("check could not finish (poolchecks.gpu_fit: ValueError invalid literal for int() with base "
                        "10: 'two')"))]
