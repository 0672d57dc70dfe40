"""The Open WebUI add-on: nimgen's open-webui chart, wired to every model's in-cluster OpenAI endpoint.

nimgen ships its own small chart rather than pinning Open WebUI's upstream one: the upstream chart
turns on Ollama, Pipelines and Redis by default, went through major versions 11 to 15 within months
(12.0.0 renamed every object; until 13.2.1 it dropped `openaiBaseApiUrls` when Pipelines were off,
exactly this configuration), and cannot be rendered offline, so neither `nimgen validate` nor the tests
could check what Argo CD would apply. A local chart is rendered, schema-checked and policy-checked like
every other nimgen chart.
"""

from __future__ import annotations

from typing import Any

from nimgen.environment.model import Environment, Model

CHART_NAME = "open-webui"
CHART_PATH = f"charts/{CHART_NAME}"
RELEASE_NAME = "open-webui"
# The release nimgen's chart and settings were checked against (Open WebUI's docs for v0.7.x list the
# headless admin and persistent-config variables used; v0.6.23 made the image run as any non-root user).
DEFAULT_IMAGE = "ghcr.io/open-webui/open-webui:v0.7.2"
# Tags that follow a branch of Open WebUI, not a release (the chart refuses them too).
MOVING_TAGS = frozenset({"latest", "main", "dev", "cuda", "ollama"})
# Kinds the chart renders, for the platform AppProject.
NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (
    ("", "Service"), ("", "ServiceAccount"), ("", "PersistentVolumeClaim"), ("apps", "Deployment"),
    ("networking.k8s.io", "NetworkPolicy"),
)
# The nim-llm chart's Service: named after the model (fullnameOverride), port http-openai.
MODEL_SERVICE_PORT = 8000


def model_url(model: Model) -> str:
    """A model's OpenAI base URL inside the cluster (the Service the nim-llm chart renders for it)."""
    return f"http://{model.name}.{model.namespace}.svc.cluster.local:{MODEL_SERVICE_PORT}/v1"


def values(env: Environment) -> dict[str, Any]:
    """Values for charts/open-webui: every model's endpoint, the Secret by name, the data claim."""
    webui = env.open_webui
    assert webui is not None, "only called for environments with addons.openWebUI.enabled"
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "image": {"repository": webui.image.repository, "tag": webui.image.tag, "digest": webui.image.digest},
        "openaiBaseUrls": [model_url(model) for model in env.models],
        "auth": {"secretName": webui.secret, "allowSignup": webui.allow_signup},
        "persistence": {"size": webui.storage_size, "storageClassName": webui.storage_class},
        "resources": {"requests": {"cpu": webui.cpu, "memory": webui.memory},
                      "limits": {"memory": webui.memory}},
    }
