"""Bad environment files are refused with located messages, exit 1, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import VALID, run, tree_digest, write_env
from nimgen.environment import checks


def _render_fails(root: Path, text: str) -> str:
    env = write_env(root, text)
    before = tree_digest(root)
    result = run("render", env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert tree_digest(root) == before, "a refused render must not write anything"
    return result.output


CASES = [
    pytest.param(
        VALID.replace("  region: us-west-2\n", "  region: us-west-2\n  region: eu-west-1\n"),
        "environments/test.yaml:5:3: $.cluster.region: duplicate key 'region' (first defined at line 4)",
        id="duplicate-key",
    ),
    pytest.param(
        VALID.replace("  name: nim-test\n", "\tname: nim-test\n"),
        "environments/test.yaml:3:1: $: tab character used for indentation",
        id="tab-indentation",
    ),
    pytest.param(
        VALID + "  - name: other\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: a10g\n    gpuz: 2\n",
        "environments/test.yaml:15:5: $.models[1].gpuz: unknown key 'gpuz'\n    hint: did you mean 'gpus'?",
        id="unknown-key",
    ),
    pytest.param(
        VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    gpus: two\n"),
        "environments/test.yaml:12:11: $.models[0].gpus: expected integer, got string \"two\"",
        id="wrong-type",
    ),
    pytest.param(
        # The pool checks look a model's pool up by name: a list in its place is the schema's to report.
        VALID.replace("    nodePool: a10g\n", "    nodePool: [a10g]\n"),
        'environments/test.yaml:11:15: $.models[0].nodePool: expected string, got list ["a10g"]',
        id="pool-as-list",
    ),
    pytest.param(
        VALID.replace('kubernetesVersion: "1.33"', "kubernetesVersion: 1.33"),
        "environments/test.yaml:5:22: $.cluster.kubernetesVersion: expected string, got number 1.33\n"
        '    hint: write the minor version as a quoted string, e.g. kubernetesVersion: "1.33"',
        id="unquoted-version",
    ),
    pytest.param(
        VALID + "  - name: llama3-8b-instruct\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: a10g\n",
        "environments/test.yaml:12:11: $.models[1].name: duplicate model name 'llama3-8b-instruct' (also models[0])\n"
        "    hint: model names must be unique: they name the Application, Helm release and workload",
        id="duplicate-model",
    ),
    pytest.param(
        VALID.replace("name: llama3-8b-instruct", "name: " + "a" * 53),
        "environments/test.yaml:9:11: $.models[0].name: name is 53 characters; as Helm release and StatefulSet "
        "name it may have at most 52",
        id="model-name-too-long-for-kubernetes",
    ),
    pytest.param(
        VALID.replace("name: llama3-8b-instruct", "name: " + "a" * 64),
        "environments/test.yaml:9:11: $.models[0].name: name is 64 characters",
        id="model-name-too-long-for-label",
    ),
    pytest.param(
        VALID.replace("name: test\n", "name: " + "e" * 55 + "\n"),
        "environments/test.yaml:1:7: $.name: name is 55 characters; the AppProject '" + "e" * 55 + "-platform' would pass 63",
        id="environment-name-too-long",
    ),
    pytest.param(
        VALID.replace("llama3-8b-instruct:1.0.3", "llama3-8b-instruct:latest"),
        "environments/test.yaml:10:12: $.models[0].image: image 'nvcr.io/nim/meta/llama3-8b-instruct:latest' is not "
        "pinned: tag ':latest' floats",
        id="latest-tag",
    ),
    pytest.param(
        VALID.replace("llama3-8b-instruct:1.0.3", "llama3-8b-instruct"),
        "environments/test.yaml:10:12: $.models[0].image: image 'nvcr.io/nim/meta/llama3-8b-instruct' is not pinned: "
        "image has no tag or digest",
        id="untagged-image",
    ),
    pytest.param(
        VALID.replace("name: test", "name: Test_Env"),
        "environments/test.yaml:1:7: $.name: invalid value \"Test_Env\"\n    hint: use lower-case letters",
        id="name-not-dns-label",
    ),
    pytest.param(
        VALID.replace("gitops:\n  repoURL: https://github.com/example/nim-gitops.git\n", ""),
        "environments/test.yaml:1:1: $.gitops: missing required key 'gitops'",
        id="missing-section",
    ),
    pytest.param(
        VALID + "    replicas: {min: 3, max: 2}\n",
        "environments/test.yaml:12:15: $.models[0].replicas: replicas.min (3) is greater than replicas.max (2)",
        id="replicas-inverted",
    ),
    pytest.param(
        VALID + "    env: {NGC_API_KEY: abc}\n",
        "environments/test.yaml:12:11: $.models[0].env.NGC_API_KEY: environment variable NGC_API_KEY is managed by nimgen",
        id="env-overrides-chart",
    ),
    pytest.param(
        VALID + "    env: {HF_TOKEN: abc}\n",
        "$.models[0].env.HF_TOKEN: environment variable HF_TOKEN looks like a secret",
        id="secret-in-env",
    ),
    pytest.param(
        VALID + "    env: {NIM_NOTE: nvapi-AAAAAAAAAAAAAAAAAAAAAAAA}\n",
        "environments/test.yaml:12:21: $.models[0].env.NIM_NOTE: an NGC API key is in the environment file; it "
        "would be committed to Git",
        id="credential-value",
    ),
    pytest.param(
        VALID.replace("models:\n", "description: 'key AKIAIOSFODNN7EXAMPLE for later'\nmodels:\n"),
        "environments/test.yaml:8:14: $.description: an AWS access key id is in the environment file",
        id="aws-key-anywhere",
    ),
    pytest.param(
        VALID.replace("models:\n", "ngc:\n  apiKeySecret: ngc-api\n  password: hunter2hunter2\nmodels:\n"),
        "$.ngc.password: a literal value under 'password' is in the environment file",
        id="literal-password",
    ),
    pytest.param(
        VALID + "    namespace: argocd\n",
        "environments/test.yaml:12:16: $.models[0].namespace: model namespace 'argocd' is reserved",
        id="reserved-namespace",
    ),
    pytest.param(
        VALID + "    workload: Deployment\n    cache: {type: claimTemplate}\n",
        "$.models[0].cache: cache type claimTemplate needs workload StatefulSet",
        id="claim-template-on-deployment",
    ),
    pytest.param(
        VALID + "    cache: {type: existingClaim}\n",
        "$.models[0].cache: cache type existingClaim needs claimName",
        id="existing-claim-without-name",
    ),
    pytest.param(
        VALID + "    resources: {memory: 16Gi}\n    sharedMemory: 16Gi\n",
        "$.models[0].sharedMemory: sharedMemory (16Gi) must be smaller than resources.memory (16Gi)",
        id="shm-exceeds-memory",
    ),
    pytest.param(
        VALID.replace('"1.33"', '"1.27"'),
        "$.cluster.kubernetesVersion: Kubernetes 1.27 is older than the oldest version nimgen supports (1.29)",
        id="old-kubernetes",
    ),
    pytest.param(
        VALID.replace("    nodePool: a10g\n", ""),
        "environments/test.yaml:9:5: $.models[0]: model 'llama3-8b-instruct' has no nodePool",
        id="no-node-pool",
    ),
    pytest.param(
        "name: [unclosed\n",
        "environments/test.yaml:2:1: $: invalid YAML",
        id="malformed-yaml",
    ),
    pytest.param(
        "- just\n- a list\n",
        "environments/test.yaml:1:1: $: must be a mapping",
        id="not-a-mapping",
    ),
    pytest.param(
        VALID.replace("name: llama3-8b-instruct", 'name: "llama\\n"'),
        'environments/test.yaml:9:11: $.models[0].name: invalid value "llama\\n"',
        id="trailing-newline-in-name",
    ),
    pytest.param(
        VALID.replace("name: nim-test", 'name: "nim-test\\n"'),
        'environments/test.yaml:3:9: $.cluster.name: invalid value "nim-test\\n"',
        id="trailing-newline-in-cluster-name",
    ),
    pytest.param(
        VALID + "    env: {yes: '1', NIM_X: a}\n",
        'environments/test.yaml:12:11: $.models[0].env.yes: key "yes" is read as a boolean (true), not as a string',
        id="boolean-key-mixed-with-strings",
    ),
    pytest.param(
        VALID + "    env: {1: a}\n",
        'environments/test.yaml:12:11: $.models[0].env.1: key "1" is read as a number (1), not as a string',
        id="number-key",
    ),
    pytest.param(
        VALID + "    gpus: 1e400\n",
        "environments/test.yaml:12:11: $.models[0].gpus: number 1e400 is not finite",
        id="overflowing-float",
    ),
    pytest.param(
        VALID + "    replicas: {min: 1, max: 2}\n    autoscaling: {target: .inf}\n",
        "environments/test.yaml:13:27: $.models[0].autoscaling.target: number .inf is not finite",
        id="infinite-target",
    ),
    pytest.param(
        VALID + "    replicas: {min: 1, max: 2}\n    autoscaling: {target: .nan}\n",
        "environments/test.yaml:13:27: $.models[0].autoscaling.target: number .nan is not finite",
        id="nan-target",
    ),
    pytest.param(
        VALID + "    replicas: {min: 1, max: 2}\n    autoscaling: {target: 1e300}\n",
        "environments/test.yaml:13:27: $.models[0].autoscaling.target: 1e+300 is greater than the maximum of 1000000",
        id="huge-target",
    ),
    pytest.param(
        VALID + "    gpus: 123456789012345678901234567890\n",
        "environments/test.yaml:12:11: $.models[0].gpus: number 123456789012345678901234567890 is out of range",
        id="huge-integer",
    ),
    pytest.param(
        VALID.replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", "nvcr.io//nim:1.0"),
        'environments/test.yaml:10:12: $.models[0].image: image "nvcr.io//nim:1.0" is not a valid image reference: '
        "the name has an empty path component",
        id="image-empty-path-component",
    ),
    pytest.param(
        VALID.replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", "nvcr.io:99999/nim/x:1.0"),
        'environments/test.yaml:10:12: $.models[0].image: image "nvcr.io:99999/nim/x:1.0" is not a valid image '
        "reference: port 99999 is not between 1 and 65535",
        id="image-port-out-of-range",
    ),
    pytest.param(
        VALID.replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", '"nvcr.io/nim/x:1.0\\n"'),
        'environments/test.yaml:10:12: $.models[0].image: image "nvcr.io/nim/x:1.0\\n" is not a valid image reference',
        id="image-trailing-newline",
    ),
    pytest.param(
        VALID.replace("models:\n", "prerequisites:\n  - {kind: StorageClass, namespace: nim, name: fast, "
                                   "description: d}\nmodels:\n"),
        "$.prerequisites[0].namespace: a StorageClass is cluster-scoped: it has no namespace\n"
        "    hint: remove namespace",
        id="cluster-scoped-prerequisite-with-namespace",
    ),
    pytest.param(
        VALID.replace("models:\n", "prerequisites:\n  - {kind: ConfigMap, name: settings, description: d}\n"
                                   "models:\n"),
        "$.prerequisites[0]: a ConfigMap lives in a namespace: say which\n    hint: add namespace: <name>",
        id="namespaced-prerequisite-without-namespace",
    ),
    pytest.param(
        VALID.replace("gitops:\n", "gitops:\n  namespace: gitops\n") + "    namespace: gitops\n",
        "$.models[0].namespace: model namespace 'gitops' is reserved\n    hint: run models in their own namespace "
        "(the default is 'nim'); letting the environment's AppProject deploy to Argo CD's or a system namespace "
        "would grant it cluster-admin-like rights",
        id="argo-cd-namespace-is-reserved",
    ),
    pytest.param(
        VALID.replace("models:\n", "modelDefaults:\n  namespace: kube-system\nmodels:\n"),
        "$.models[0].namespace: model namespace 'kube-system' is reserved",
        id="system-namespace-from-model-defaults",
    ),
    pytest.param(
        VALID.replace("name: llama3-8b-instruct", "name: test-root"),
        "$.models[0].name: model name 'test-root' is also the name of the root Application\n"
        "    hint: Argo CD would see two Applications with one name; rename the model",
        id="model-named-like-the-root-application",
    ),
    pytest.param(
        VALID.replace("models:\n", "models:\n  - just a string\n").replace("name: llama3-8b-instruct", "name: test-root"),
        "$.models[1].name: model name 'test-root' is also the name of the root Application",
        id="models-after-a-malformed-one-are-checked",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_input_is_refused_with_location(tmp_path: Path, text: str, expected: str) -> None:
    output = _render_fails(tmp_path, text)
    assert expected in output


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 8):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"a{level}: &a{level} [{refs}]")
    output = _render_fails(tmp_path, VALID + "\n".join(levels) + "\n")
    assert "aliases expand this document past 20000 nodes" in output


def test_small_anchors_are_allowed(tmp_path: Path) -> None:
    text = VALID.replace("    nodePool: a10g\n", "    nodePool: &pool a10g\n") + (
        "  - name: other\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: *pool\n"
    )
    env = write_env(tmp_path, text)
    result = run("render", env)
    assert result.exit_code == 0, result.output


def test_every_problem_reported_at_once_sorted_by_position(tmp_path: Path) -> None:
    text = VALID.replace("region: us-west-2", "regoin: us-west-2").replace(":1.0.3", ":latest") + "    gpus: 0\n"
    output = _render_fails(tmp_path, text)
    lines = [line for line in output.splitlines() if line.startswith("environments/")]
    assert [line.split(": ")[1] for line in lines] == [
        "$.cluster.region",      # missing (located at the cluster mapping, line 3)
        "$.cluster.regoin",      # unknown key, line 4
        "$.models[0].image",     # latest, line 10
        "$.models[0].gpus",      # below minimum, line 12
    ]
    assert output.startswith("error: 4 problems in environments/test.yaml")


def test_errors_in_several_files_reported_together(tmp_path: Path) -> None:
    one = write_env(tmp_path, VALID.replace(":1.0.3", ":latest"), "one.yaml")
    two = write_env(tmp_path, VALID.replace("name: test", "name: two").replace("gpus", "x") + "    gpu: 1\n", "two.yaml")
    result = run("render", one, two)
    assert result.exit_code == 1
    assert "environments/one.yaml:10:12" in result.output
    assert "environments/two.yaml:12:5: $.models[0].gpu: unknown key 'gpu'" in result.output
    assert not (tmp_path / "argocd").exists()


def test_error_in_defaults_file_points_at_defaults(tmp_path: Path) -> None:
    write_env(tmp_path, "modelDefaults:\n  gpus: many\n", "_defaults.yaml")
    output = _render_fails(tmp_path, VALID)
    assert "environments/_defaults.yaml:2:9: $.modelDefaults.gpus: expected integer, got string \"many\"" in output


def test_invalid_env_keeps_previous_tree(tmp_path: Path) -> None:
    env = write_env(tmp_path, VALID)
    assert run("render", env).exit_code == 0
    before = tree_digest(tmp_path / "argocd")
    write_env(tmp_path, VALID.replace(":1.0.3", ":latest"))
    assert run("render", env).exit_code == 1
    assert tree_digest(tmp_path / "argocd") == before


def test_missing_file(tmp_path: Path) -> None:
    result = run("render", tmp_path / "environments" / "nope.yaml")
    assert result.exit_code == 1
    assert "environments/nope.yaml:1:1: $: file not found" in result.output


def test_huge_values_are_shortened_in_messages(tmp_path: Path) -> None:
    big = "a" * 5_000_000
    output = _render_fails(tmp_path, VALID.replace("name: test", f"name: {big}").replace(
        "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", "nvcr.io/" + big))
    assert len(output) < 2000, output[:2000]
    assert '$.name: "' + "a" * 80 + '"… (5000000 characters)' in output
    assert "(5000008 characters)" in output  # the image, with its registry


def test_unknown_huge_key_is_shortened(tmp_path: Path) -> None:
    output = _render_fails(tmp_path, VALID + "? " + "k" * 100_000 + "\n: 1\n")
    assert len(output) < 2000
    assert "unknown key '" + "k" * 80 + "… (100000 characters)'" in output


# Every model-level refusal of the environment checks, where it points, what it says and the fix it offers.
MODEL_CHECKS = {
    "long-name": (VALID.replace("name: llama3-8b-instruct", "name: " + "a" * 53),
                  ("9:11: $.models[0].name: name is 53 characters; as Helm release and StatefulSet name it may have "
                  "at most 52 (Helm allows 53, and Kubernetes adds an 11-character revision hash to a 63-character "
                  "label)\n    hint: shorten it to 52 characters or fewer")),
    "invalid-image": (VALID.replace("meta/llama3-8b-instruct:1.0.3", "meta/Llama3:1.0.3"),
                      ('10:12: $.models[0].image: image "nvcr.io/nim/meta/Llama3:1.0.3" is not a valid image reference: '
                      "the repository name must be lower-case\n    hint: write registry/repository:tag or "
                      "registry/repository@sha256:<digest>, e.g. nvcr.io/nim/meta/llama3-8b-instruct:1.0.3")),
    "floating-tag": (VALID.replace(":1.0.3", ":latest"),
                     ("10:12: $.models[0].image: image 'nvcr.io/nim/meta/llama3-8b-instruct:latest' is not pinned: tag "
                     "':latest' floats: every node may pull a different NIM version\n    hint: pin a released tag "
                     "(e.g. :1.0.3) or a digest (@sha256:...); see the model's NGC catalog page")),
    "no-pool": (VALID.replace("    nodePool: a10g\n", ""),
                ("9:5: $.models[0]: model 'llama3-8b-instruct' has no nodePool\n"
                "    hint: set nodePool on the model or in modelDefaults")),
    "min-above-max": (VALID + "    replicas: {min: 3, max: 2}\n",
                      ("12:15: $.models[0].replicas: replicas.min (3) is greater than replicas.max (2)\n"
                      "    hint: set min <= max; min == max means a fixed replica count")),
    "managed-env": (VALID + "    env: {NIM_CACHE_PATH: /x}\n",
                    ("12:11: $.models[0].env.NIM_CACHE_PATH: environment variable NIM_CACHE_PATH is managed by nimgen\n"
                    "    hint: it follows the model cache mount")),
    "secret-looking-env": (VALID + "    env: {HF_TOKEN: abc}\n",
                           ("12:11: $.models[0].env.HF_TOKEN: environment variable HF_TOKEN looks like a secret and "
                           "would be committed in plain text\n    hint: create a Secret in the cluster and reference "
                           "it: secretEnv: {HF_TOKEN: {secret: <name>, key: <key>}}")),
    "managed-secret-env": (VALID + "    secretEnv: {NIM_LOG_LEVEL: {secret: s, key: k}}\n",
                           ("12:17: $.models[0].secretEnv.NIM_LOG_LEVEL: environment variable NIM_LOG_LEVEL is managed "
                           "by nimgen\n    hint: the chart sets it")),
    "env-and-secret-env": (VALID + "    env: {FOO: x}\n    secretEnv: {FOO: {secret: s, key: k}}\n",
                           ("13:17: $.models[0].secretEnv.FOO: environment variable FOO is set in both env and "
                           "secretEnv\n    hint: keep one of them")),
    "claim-name-without-existing-claim": (
        VALID + "    cache: {type: emptyDir, claimName: c}\n",
        ("12:40: $.models[0].cache.claimName: claimName is used only with cache type existingClaim (type is "
        "emptyDir)\n    hint: remove claimName, or set type: existingClaim to mount that claim")),
    "storage-class-without-claim-template": (
        VALID + "    workload: Deployment\n    cache: {type: emptyDir, storageClassName: gp3}\n",
        ("13:47: $.models[0].cache.storageClassName: storageClassName is used only with cache type claimTemplate (type "
        "is emptyDir)\n    hint: remove storageClassName, or set type: claimTemplate for a claim per replica")),
    "claim-template-on-a-deployment": (
        VALID + "    workload: Deployment\n    cache: {type: claimTemplate}\n",
        ("13:12: $.models[0].cache: cache type claimTemplate needs workload StatefulSet (per-replica claims come from "
        "claim templates)\n    hint: use workload: StatefulSet, or cache type existingClaim or emptyDir")),
    "existing-claim-without-name": (
        VALID + "    cache: {type: existingClaim}\n",
        ("12:12: $.models[0].cache: cache type existingClaim needs claimName\n"
        "    hint: name the ReadWriteMany PersistentVolumeClaim to mount")),
    "shared-memory-as-large-as-memory": (
        VALID + "    resources: {memory: 16Gi}\n    sharedMemory: 16Gi\n",
        ("13:19: $.models[0].sharedMemory: sharedMemory (16Gi) must be smaller than resources.memory (16Gi)\n"
        "    hint: /dev/shm is memory-backed and counts against the container's memory limit")),
    "old-kubernetes": (
        VALID.replace('"1.33"', '"1.27"'),
        ("5:22: $.cluster.kubernetesVersion: Kubernetes 1.27 is older than the oldest version nimgen supports "
        "(1.29)\n    hint: upgrade the cluster (EKS standard support covers recent versions only)")),
}


@pytest.mark.parametrize("name", sorted(MODEL_CHECKS))
def test_every_check_says_where_what_and_how(tmp_path: Path, name: str) -> None:
    text, expected = MODEL_CHECKS[name]
    output = _render_fails(tmp_path, text)
    assert output == f"error: 1 problem in environments/test.yaml\nenvironments/test.yaml:{expected}\n"


def test_the_environment_schema_is_a_valid_draft_2020_12_schema() -> None:
    """Checked here rather than on every run (it costs a tenth of a second of each command)."""
    import jsonschema
    from nimgen.environment.schema import environment_schema

    jsonschema.Draft202012Validator.check_schema(environment_schema())
    broken = {**environment_schema(), "type": "mapping"}
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema(broken)


def test_a_check_that_cannot_finish_on_a_valid_environment_refuses_the_render(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No check is known to stop on a document the schema accepts; one that did would leave its rule unchecked,
    # so a fault is put in a model check's place to show that such a stop refuses the render.
    def memory_problems(model: object, base: list[object], add: object) -> None:
        raise KeyError("precision")

    monkeypatch.setattr(checks, "_memory_problems", memory_problems)
    output = _render_fails(tmp_path, VALID)
    assert ("environments/test.yaml:9:5: $.models[0]: check could not finish (test_environment_errors.memory_problems: "
            "KeyError 'precision')\n    hint: the schema accepts this environment, so this is a nimgen bug: report it "
            "with the file; nothing was rendered") in output
    # With a schema error in the file, the same stop is the schema's to explain.
    output = _render_fails(tmp_path, VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    gpus: two\n"))
    assert "could not finish" not in output
    assert "$.models[0].gpus: expected integer" in output
