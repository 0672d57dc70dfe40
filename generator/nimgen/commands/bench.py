"""`nimgen bench`: a GenAI-Perf Job per model, the reference deployment's measurement without its GPU.

The reference deployment ran GenAI-Perf in a Deployment that asked for `nvidia.com/gpu: 1` without
tolerating the GPU taint, so it never scheduled. GenAI-Perf is a client: these Jobs request no GPU,
tolerate nothing and keep off nimgen's GPU pools, so they land on the cluster's ordinary nodes.

Each Job runs to completion once: wait for the model's Service to be ready, run `genai-perf profile`
(init containers, in order), then print GenAI-Perf's summary export, so `kubectl logs job/...` returns
it as JSON. Artifacts live in an emptyDir: the summary is small and reaches the log, a claim would only
add a storage class to pick and a volume to clean up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from nimgen.components import gateway as components_gateway
from nimgen.components import models as model_component
from nimgen.environment.load import load_environment
from nimgen.errors import UserError
from nimgen.gitops import applications, writer
from nimgen.gitops.charts import with_header
from nimgen.gitops.tree import Tree, environment_dir
from nimgen.model import Environment, Model
from nimgen.repository import default_root
from nimgen.yamlio import dump, dump_all

# GenAI-Perf from the Triton SDK image of January 2025 (genai-perf 0.0.10; its CLI was checked against the
# 0.0.10 package). A pin to re-check: later SDK images drop --service-kind and change tokenizer defaults.
SDK_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3-sdk"
# GenAI-Perf 0.0.10's own default, which the reference deployment also named. It is not the served model's
# tokenizer (Meta's are gated on Hugging Face), so token counts are approximate; --tokenizer overrides it.
DEFAULT_TOKENIZER = "hf-internal-testing/llama-tokenizer"
# The reference deployment's seed and measurement window.
RANDOM_SEED = 123
MEASUREMENT_INTERVAL_MS = 4000
ARTIFACTS = "/artifacts"
EXPORT_FILE = "profile_export.json"
# GenAI-Perf writes its summary beside the profile export as <stem>_genai_perf.json.
SUMMARY_FILE = "profile_export_genai_perf.json"
READY_WAIT_SECONDS = 600
DEADLINE_SECONDS = 1800
# Finished Jobs (and their logs) stay a day; the next sync replaces them anyway.
TTL_SECONDS = 86400
USER_ID = 1000
COMMAND = "nimgen bench --write"
# What the bench Application applies, for its AppProject.
KINDS: tuple[tuple[str, str], ...] = (("batch", "Job"), ("networking.k8s.io", "NetworkPolicy"))

# Runs GenAI-Perf with the gateway's key, masked in everything printed (the script's docstring says why).
WITH_KEY = resources.files("nimgen").joinpath("data/bench/genai_perf_with_key.py").read_text(encoding="utf-8")
# Waits for the model to answer, waking it through the gateway when it scales to zero (see its docstring).
WAIT = resources.files("nimgen").joinpath("data/bench/wait_for_model.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Door:
    """The gateway a benchmark goes through: its in-cluster URL, and the key of the client it calls as."""

    url: str  # base URL, ending in /v1
    namespace: str  # where the Jobs run: the gateway's, which holds the keys' Secret
    secret: str = ""  # Secret of the API keys ("" when the gateway asks for none)
    client: str = ""  # the data key of that Secret the Jobs read


@dataclass(frozen=True)
class BenchParams:
    """The load GenAI-Perf generates; the defaults are the reference deployment's."""

    concurrency: int = 10
    input_tokens: int = 200
    output_tokens: int = 100
    num_prompts: int = 100
    tokenizer: str = DEFAULT_TOKENIZER


def select_models(env: Environment, names: tuple[str, ...]) -> tuple[Model, ...]:
    """The models named in `names` (all when empty); UserError naming the known ones otherwise."""
    known = {model.name: model for model in env.models}
    if not known:
        raise UserError(f"environment '{env.name}' has no models to benchmark",
                        hint="add a model to its environment file")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(f"no model {', '.join(repr(name) for name in unknown)} in environment '{env.name}'",
                        hint=f"known models: {', '.join(known)}")
    return tuple(model for model in env.models if not names or model.name in names)


def gateway_door(env: Environment, models: tuple[Model, ...], client: str) -> Door:
    """How benchmarks of `models` go through the environment's gateway as `client`; UserError when they cannot."""
    gateway = env.gateway
    if gateway is None:
        raise UserError(f"environment '{env.name}' has no gateway to benchmark through",
                        hint="leave out --gateway to call each model's Service, or enable gateway")
    if gateway.oidc_issuer:
        raise UserError("the gateway takes OIDC tokens: a benchmark Job cannot obtain one",
                        hint="leave out --gateway to call each model's Service")
    outside = [model.name for model in models if model.route is None]
    if outside:
        raise UserError(f"the gateway does not serve {', '.join(repr(name) for name in outside)}",
                        hint="pick models it serves with --model, or leave out --gateway")
    if gateway.api_key_clients and client not in gateway.api_key_clients:
        given = f"--client '{client}' is not one of its clients" if client else "--client is missing"
        raise UserError(f"the gateway asks for an API key: {given}",
                        hint=f"pass --client with one of {', '.join(gateway.api_key_clients)} (gateway.auth.apiKeys"
                             ".clients); the benchmark's tokens count against that client's budget")
    if client and not gateway.api_key_clients:
        raise UserError("--client names an API key, but the gateway asks for none", hint="leave out --client")
    return Door(components_gateway.in_cluster_url(gateway), gateway.namespace,
                gateway.api_keys_secret if client else "", client)


def served_name(model: Model) -> str:
    """The model id on the OpenAI API: servedModelName, else NIM's default (the image path below /nim/)."""
    return model.served_model_name or model.image.repository.partition("/nim/")[2] or \
        model.image.repository.split("/", 1)[1]


def service_address(model: Model) -> str:
    """host:port of the model's in-cluster Service (the nim-llm chart names it after the model)."""
    return f"{model.name}.{model.namespace}.svc.cluster.local:{model_component.SERVICE_PORT}"


def genai_perf_args(model: Model, params: BenchParams, door: Door | None = None) -> list[str]:
    """Arguments of `genai-perf profile` (0.0.10) for one model, directly or through the gateway."""
    name, url = served_name(model), service_address(model)
    if door is not None and model.route is not None:
        # Its public name, at the gateway's base URL (GenAI-Perf appends /v1/completions).
        name, url = model.route.names[0], door.url.removesuffix("/v1")
    return [
        "-m", name,
        "--service-kind", "openai",
        "--endpoint-type", "completions",  # POST /v1/completions
        "--url", url,
        "--streaming",  # time to first token and inter-token latency need a stream
        "--synthetic-input-tokens-mean", str(params.input_tokens),
        "--synthetic-input-tokens-stddev", "0",
        "--output-tokens-mean", str(params.output_tokens),  # sent as max_tokens
        "--output-tokens-stddev", "0",
        "--num-prompts", str(params.num_prompts),
        "--concurrency", str(params.concurrency),
        "--random-seed", str(RANDOM_SEED),
        "--measurement-interval", str(MEASUREMENT_INTERVAL_MS),
        "--tokenizer", params.tokenizer,
        "--artifact-dir", ARTIFACTS,
        "--profile-export-file", EXPORT_FILE,
    ]


def job_name(model: Model) -> str:
    """The Job's name: at most 52 + 11 = 63 characters, as a label value must be."""
    return f"{model.name}-genai-perf"


def _labels(env: Environment, model: Model) -> dict[str, str]:
    # Not the model's selector labels (name nim-llm): its Service, PDB and NetworkPolicy never pick this pod.
    return {"app.kubernetes.io/name": "genai-perf", "app.kubernetes.io/instance": model.name,
            "app.kubernetes.io/component": "benchmark", "app.kubernetes.io/part-of": "nimgen",
            "app.kubernetes.io/managed-by": "nimgen", "nimgen.io/environment": env.name,
            "nimgen.io/model": model.name}


def _container(name: str, command: list[str], args: list[str], cpu: str, memory: str,
               env: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "image": SDK_IMAGE,
        # As for every tag nimgen pins: each start re-resolves the tag (cached layers are not pulled again).
        "imagePullPolicy": "Always",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            # Not documented to run read-only; non-root already keeps the image's files.
                            "readOnlyRootFilesystem": False, "runAsNonRoot": True},
        "command": command,
        "args": args,
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "HF_HOME", "value": "/tmp/huggingface"}, *env],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "volumeMounts": [{"name": "artifacts", "mountPath": ARTIFACTS}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def _profile(model: Model, params: BenchParams, door: Door | None) -> dict[str, Any]:
    """The GenAI-Perf container: on its own, or under the wrapper that adds the gateway key and masks it."""
    args = genai_perf_args(model, params, door)
    if door is None or not door.secret:
        return _container("genai-perf", ["genai-perf", "profile"], args, "2", "4Gi")
    key = {"name": "NIMGEN_GATEWAY_API_KEY", "valueFrom": {"secretKeyRef": {"name": door.secret, "key": door.client}}}
    summary = {"name": "NIMGEN_SUMMARY_FILE", "value": f"{ARTIFACTS}/{SUMMARY_FILE}"}
    return _container("genai-perf", ["python3", "-c", WITH_KEY], args, "2", "4Gi", (key, summary))


def namespace(model: Model, door: Door | None) -> str:
    """Where a model's benchmark runs: beside the model, or beside the gateway's keys."""
    return door.namespace if door is not None else model.namespace


def _wait(model: Model, door: Door | None) -> tuple[dict[str, Any], int]:
    """The container that waits for the model to answer, and how long it may take."""
    if door is None or model.route is None or not model.scale_to_zero:
        # Ready means the model itself is: the gateway answers (503) for a model without a ready replica.
        args = [f"http://{service_address(model)}/v1/health/ready", str(READY_WAIT_SECONDS)]
        return _container("wait-for-model", ["python3", "-c", WAIT], args, "100m", "128Mi"), READY_WAIT_SECONDS
    # At zero replicas only the gateway's requests start one: a cold start, as long as the model may take.
    seconds = max(READY_WAIT_SECONDS, model.startup_timeout_minutes * 60)
    args = [f"{door.url}/completions", str(seconds), model.route.names[0]]
    key = ({"name": "NIMGEN_GATEWAY_API_KEY", "valueFrom": {"secretKeyRef": {"name": door.secret, "key": door.client}}},
           ) if door.secret else ()
    return _container("wait-for-model", ["python3", "-c", WAIT], args, "100m", "128Mi", key), seconds


def job(env: Environment, model: Model, params: BenchParams, door: Door | None = None) -> dict[str, Any]:
    """A batch/v1 Job benchmarking one model through its in-cluster Service or the gateway, on an ordinary node."""
    wait, wait_seconds = _wait(model, door)
    labels = _labels(env, model)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(model),
            "namespace": namespace(model, door),
            "labels": labels,
            "annotations": {
                # Each manual sync of the bench Application runs it again (the previous run is deleted first).
                "argocd.argoproj.io/hook": "Sync",
                "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
            },
        },
        "spec": {
            "backoffLimit": 0,  # a failed benchmark is a result to read, not something to repeat under load
            # The benchmark's own time beyond the usual wait for a ready model.
            "activeDeadlineSeconds": DEADLINE_SECONDS + wait_seconds - READY_WAIT_SECONDS,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": {"labels": dict(labels),  # a copy: the YAML dump would otherwise write an alias
                             "annotations": {"kubectl.kubernetes.io/default-container": "report"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # nvcr.io serves the SDK image anonymously too; the pull secret avoids anonymous limits.
                    "imagePullSecrets": [{"name": env.ngc.image_pull_secret}],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                                        "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}},
                    # No GPU, no toleration of the GPU taint, and never on a nimgen GPU node even untainted.
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "nimgen.io/node-pool", "operator": "DoesNotExist"}]}]}}},
                    "initContainers": [
                        wait,
                        _profile(model, params, door),
                    ],
                    "containers": [
                        _container("report", ["cat"], [f"{ARTIFACTS}/{SUMMARY_FILE}"], "50m", "64Mi")],
                    "volumes": [{"name": "artifacts", "emptyDir": {"sizeLimit": "1Gi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
                },
            },
        },
    }


def network_policy(env: Environment, model: Model, door: Door | None = None) -> dict[str, Any]:
    """No ingress to the benchmark pod: it serves nothing (egress stays open for the model and Hugging Face)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": job_name(model), "namespace": namespace(model, door), "labels": _labels(env, model)},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "genai-perf",
                                            "app.kubernetes.io/instance": model.name}},
            "policyTypes": ["Ingress"],
            "ingress": [],
        },
    }


def manifests(env: Environment, model: Model, params: BenchParams, door: Door | None = None) -> list[dict[str, Any]]:
    """One model's benchmark: its NetworkPolicy and its Job."""
    return [network_policy(env, model, door), job(env, model, params, door)]


def bench_dir(env: Environment) -> PurePosixPath:
    """Folder of the bench output: beside apps/, so the root Application never syncs it."""
    return environment_dir(env) / "bench"


def project_name(env: Environment) -> str:
    """The bench AppProject: Jobs in the model namespaces, nothing else."""
    return f"{env.name}-bench"


def bench_project(env: Environment, door: Door | None = None) -> dict[str, Any]:
    """An AppProject of its own, so the models' project keeps admitting no Job it does not need."""
    namespaces = tuple(sorted({*env.namespaces, door.namespace})) if door else env.namespaces
    return applications.project(env, project_name(env), f"GenAI-Perf benchmarks of environment {env.name} "
                          "(generated by nimgen bench)", namespaces, (), KINDS)


def bench_application(env: Environment, models: tuple[Model, ...], params: BenchParams,
                      door: Door | None = None) -> dict[str, Any]:
    """The bench Application: the jobs/ folder, synced only by hand (no automated sync policy)."""
    return {
        "apiVersion": applications.API_VERSION,
        "kind": "Application",
        "metadata": {"name": project_name(env), "namespace": env.gitops.namespace,
                     "labels": applications.object_labels(env), "finalizers": [applications.FINALIZER]},
        "spec": {
            "project": project_name(env),
            "source": {"repoURL": env.gitops.repo_url, "targetRevision": env.gitops.target_revision,
                       "path": str(bench_dir(env) / "jobs")},
            "destination": {"server": env.gitops.destination_server, "namespace": models[0].namespace},
            "info": [
                {"name": "Models", "value": ", ".join(model.name for model in models)},
                {"name": "Load", "value": f"{params.input_tokens} input / {params.output_tokens} output "
                                          f"tokens, {params.num_prompts} prompts, concurrency "
                                          f"{params.concurrency}"},
                *([{"name": "Through", "value": f"{door.url}" + (f" as {door.client}" if door.client else "")}]
                  if door else []),
                {"name": "Run", "value": f"argocd app sync {project_name(env)}"},
            ],
            # No syncPolicy.automated: a benchmark loads the models, so it runs only when someone syncs it.
        },
    }


def jobs_yaml(env: Environment, models: tuple[Model, ...], params: BenchParams, door: Door | None = None) -> str:
    """The Jobs and their NetworkPolicies as one YAML stream (what `nimgen bench` prints)."""
    header = (f"# GenAI-Perf Jobs generated by nimgen from {env.source}; run them with kubectl apply -f - "
              "(delete a finished Job before running it again)\n")
    return header + dump_all([obj for model in models for obj in manifests(env, model, params, door)])


def bench_tree(env: Environment, models: tuple[Model, ...], params: BenchParams, door: Door | None = None) -> Tree:
    """What `nimgen bench --write` writes: project, Application and one Job file per model."""
    header = (f"Generated by nimgen from {env.source}. Do not edit: run "
              f"'nimgen bench {env.source} --write' (options in the Application's info).")
    base = bench_dir(env)
    files = {base / "project.yaml": dump(bench_project(env, door)),
             base / "application.yaml": dump(bench_application(env, models, params, door))}
    files.update({base / "jobs" / f"{model.name}.yaml": dump_all(manifests(env, model, params, door))
                  for model in models})
    return {path: with_header(path, text, header) for path, text in sorted(files.items())}


def record_path(env: Environment) -> PurePosixPath:
    """The bench folder's own ownership record: `nimgen render` and `nimgen check` never read it."""
    return writer.Scope(env.name, bench=True).record


@dataclass(frozen=True)
class BenchResult:
    """What `nimgen bench` produced: the Jobs' YAML, or the files it wrote."""

    env: Environment
    models: tuple[Model, ...]
    root: Path
    text: str = ""  # the Jobs, when not written
    changes: list[writer.Change] = field(default_factory=list)


def run_bench(env_file: Path, *, models: tuple[str, ...], params: BenchParams, write: bool,
              through_gateway: bool = False, client: str = "", lock_timeout: float = 60.0) -> BenchResult:
    """Validate ENV_FILE, pick the models, and return their Jobs or write them under argocd/<env>/bench/.

    With `through_gateway`, the Jobs call the models through the environment's gateway as `client`.

    Writes go through the writer with the bench folder's own ownership record: a new run replaces the
    previous one's files (Jobs of models not benchmarked any more are deleted), never touches a file it did
    not write, and stays out of the render record, so `nimgen render` and `nimgen check` ignore the folder.
    """
    root = default_root(env_file) if write else env_file.resolve().parent.parent
    env = load_environment(env_file, root)
    selected = select_models(env, models)
    if client and not through_gateway:
        raise UserError("--client names an API key of the gateway, which only --gateway uses",
                        hint="add --gateway, or leave out --client")
    asleep = [model.name for model in selected if model.scale_to_zero]
    if asleep and not through_gateway:
        raise UserError(f"{', '.join(repr(name) for name in asleep)} scale to zero: only requests through the gateway "
                        "start a replica, so a benchmark of the Service could wait for one that never comes",
                        hint="benchmark through the gateway (--gateway), or leave these models out with --model")
    door = gateway_door(env, selected, client) if through_gateway else None
    if not write:
        return BenchResult(env, selected, root, text=jobs_yaml(env, selected, params, door))
    tree = bench_tree(env, selected, params, door)
    with writer.repository_lock(root, lock_timeout):
        changes = writer.write(root, writer.Scope(env.name, bench=True), env.source, tree, command=COMMAND)
    return BenchResult(env, selected, root, changes=changes)
