"""The Open WebUI add-on: nimgen's open-webui chart, wired to every model's in-cluster OpenAI endpoint.

nimgen ships its own small chart rather than pinning Open WebUI's upstream one: the upstream chart
turns on Ollama, Pipelines and Redis by default, went through major versions 11 to 15 within months
(12.0.0 renamed every object; until 13.2.1 it dropped `openaiBaseApiUrls` when Pipelines were off,
exactly this configuration), and cannot be rendered offline, so neither `nimgen validate` nor the tests
could check what Argo CD would apply. A local chart is rendered, schema-checked and policy-checked like
every other nimgen chart.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components import gateway
from nimgen.components.base import Add, AppSpec, Chart, Component, Grants, Kind, setting
from nimgen.components.models import model_url
from nimgen.errors import shorten as _s
from nimgen.errors import shown
from nimgen.imageref import IMAGE_FORM, ImageRef, InvalidReference
from nimgen.model import RESERVED_NAMESPACES, Environment, Prerequisite, Ref
from nimgen.model import OpenWebUI as Settings

CHART = Chart("open-webui")
RELEASE_NAME = "open-webui"
# Add-ons sync after the models: a broken add-on never holds back a model's sync, and a model still
# loading only shows up in the UI a little later.
WAVE = 10
# The release nimgen's chart and settings were checked against (Open WebUI's docs for v0.7.x list the
# headless admin and persistent-config variables used; v0.6.23 made the image run as any non-root user).
DEFAULT_IMAGE = "ghcr.io/open-webui/open-webui:v0.7.2"
# Tags that follow a branch of Open WebUI, not a release (the chart refuses them too).
MOVING_TAGS = frozenset({"latest", "main", "dev", "cuda", "ollama"})
# Kinds the chart renders, for the platform AppProject.
NAMESPACED_KINDS: tuple[Kind, ...] = (
    ("", "Service"), ("", "ServiceAccount"), ("", "PersistentVolumeClaim"), ("apps", "Deployment"),
    ("networking.k8s.io", "NetworkPolicy"),
)


def gateway_key_secret(webui: Settings) -> str:
    """The Secret in Open WebUI's namespace holding its gateway API key (data key: the client's name)."""
    return f"{webui.secret[:41].rstrip('-.')}-gateway-api-key"


def gateway_key_secrets(env: Environment) -> list[dict[str, Any]]:
    """Open WebUI's gateway key, for External Secrets (platform-secrets): its client's entry of the gateway's secret."""
    webui, gateway = env.open_webui, env.gateway
    if webui is None or not webui.gateway_client or gateway is None:
        return []
    return [{"name": gateway_key_secret(webui), "namespace": webui.namespace, "remoteKey": gateway.api_keys_remote,
             "keys": [webui.gateway_client]}]


def values(env: Environment) -> dict[str, Any]:
    """Values for charts/open-webui: the gateway or every model's endpoint, the Secrets by name, the data claim."""
    webui = env.open_webui
    assert webui is not None, "only called for environments with addons.openWebUI.enabled"
    through = env.gateway if webui.gateway_client else None
    # Through the gateway, the models it does not serve are still called directly.
    direct = [model for model in env.models if through is None or model.route is None]
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "image": {"repository": webui.image.repository, "tag": webui.image.tag, "digest": webui.image.digest},
        "gateway": {"url": gateway.in_cluster_url(through) if through else "",
                    "apiKeySecret": {"name": gateway_key_secret(webui) if through else "",
                                     "key": webui.gateway_client}},
        "openaiBaseUrls": [model_url(model) for model in direct],
        "auth": {"secretName": webui.secret, "allowSignup": webui.allow_signup},
        "persistence": {"size": webui.storage_size, "storageClassName": webui.storage_class},
        "resources": {"requests": {"cpu": webui.cpu, "memory": webui.memory},
                      "limits": {"memory": webui.memory}},
    }


class OpenWebUI(Component):
    """addons.openWebUI: a chat front end listing every model of the environment."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)
    readme: ClassVar[dict[str, str]] = {"after-models": "readme/openwebui.md.j2"}

    def enabled(self, env: Environment) -> bool:
        return env.open_webui is not None

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.open_webui is not None
        listed = ", ".join(model.name for model in env.models) or "none"
        info = [("Image", str(env.open_webui.image)), ("Models", listed)]
        if env.open_webui.gateway_client and env.gateway is not None:
            info.append(("Through", f"{gateway.in_cluster_url(env.gateway)} as {env.open_webui.gateway_client}"))
        return [AppSpec(RELEASE_NAME, CHART, values(env), env.open_webui.namespace, WAVE, tuple(info))]

    def grants(self, env: Environment) -> Grants:
        return Grants(namespaced_kinds=NAMESPACED_KINDS)

    def readme_context(self, env: Environment) -> dict[str, Any]:
        webui = env.open_webui
        through = env.gateway if webui is not None and webui.gateway_client else None
        return {"gateway_url": gateway.in_cluster_url(through) if through else "",
                "gateway_key_secret": gateway_key_secret(webui) if through and webui else ""}

    def prerequisites(self, env: Environment) -> tuple[Prerequisite, ...]:
        webui = env.open_webui
        assert webui is not None
        found = []
        if not webui.secret_remote:
            found.append(Prerequisite(Ref("Secret", webui.namespace, webui.secret),
                                      "Open WebUI's session key and first admin (addons.openWebUI.secret); or set "
                                      "addons.openWebUI.externalSecret"))
        if webui.storage_class != env.block_storage.storage_class:
            found.append(Prerequisite(Ref("StorageClass", "", webui.storage_class),
                                      "Open WebUI's data claim (addons.openWebUI.persistence.storageClassName)"))
        return tuple(found)

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        """The chat front end must have a pinned image, its own namespace and something to list."""
        webui = (document.get("addons") or {}).get("openWebUI") or {}
        if not webui.get("enabled"):
            return
        base = ["addons", "openWebUI"]
        image = webui.get("image", DEFAULT_IMAGE)
        try:
            ref = ImageRef.parse(image)
            if ref.tag in MOVING_TAGS and not ref.digest:
                raise ValueError(f"tag ':{ref.tag}' follows a branch of Open WebUI, not a release")
        except InvalidReference as exc:
            add([*base, "image"], f"image {shown(image)} is not a valid image reference: {exc}",
                f"{IMAGE_FORM}, e.g. {DEFAULT_IMAGE}")
        except ValueError as exc:
            add([*base, "image"], f"image '{image}' is not pinned: {exc}",
                "pin a release tag (e.g. :v0.7.2) or a digest; see github.com/open-webui/open-webui/releases")
        namespace = webui.get("namespace", "open-webui")
        gitops = document.get("gitops") or {}
        if namespace == gitops.get("namespace", "argocd") or namespace in RESERVED_NAMESPACES:
            add([*base, "namespace"] if "namespace" in webui else base,
                f"Open WebUI namespace '{_s(namespace)}' is reserved",
                "run Open WebUI in its own namespace (default open-webui)")
        _check_gateway_client(document, webui, base, add)
        named = [m for m in models if isinstance(m, dict)]
        if not named:
            add([*base, "enabled"], "Open WebUI is enabled but the environment has no model to chat with",
                "add a model, or disable addons.openWebUI", warning=True)
        asleep = [str(m.get("name", "?")) for m in named if setting(m.get("scaleToZero")).get("enabled")]
        if asleep and not webui.get("gatewayClient"):
            add(base, f"Open WebUI calls {', '.join(repr(_s(name)) for name in asleep)} directly, and a model scaled to "
                "zero starts only on the gateway's requests: its chats would fail until something else wakes it",
                "chat through the gateway: set addons.openWebUI.gatewayClient", warning=True)
        for model in named:
            if model.get("name") == "open-webui" and (model.get("namespace") or "nim") == namespace:
                add([*base, "namespace"] if "namespace" in webui else base,
                    f"model 'open-webui' and Open WebUI would both own Service {namespace}/open-webui",
                    "give Open WebUI another namespace (addons.openWebUI.namespace)")


def _check_gateway_client(document: Any, webui: dict[str, Any], base: list[Any], add: Add) -> None:
    """Chatting through the gateway needs a gateway that takes API keys, and a key of Open WebUI's own."""
    client = webui.get("gatewayClient")
    if not isinstance(client, str) or not client:
        return
    where = [*base, "gatewayClient"]
    front = setting(document.get("gateway"))
    keys = setting(front.get("auth")).get("apiKeys")
    if not front.get("enabled"):
        add(where, f"Open WebUI would chat through the gateway as '{_s(client)}', but the environment has no gateway",
            "enable gateway, or remove addons.openWebUI.gatewayClient to call the models directly")
    elif not isinstance(keys, dict):
        add(where, f"Open WebUI would chat through the gateway as '{_s(client)}', but the gateway takes no API keys: "
            "Open WebUI can send a key, not obtain an OIDC token", "remove addons.openWebUI.gatewayClient to call "
            "the models directly, or authenticate the gateway with gateway.auth.apiKeys")
    elif client not in (keys.get("clients") or []):
        add(where, f"Open WebUI's gateway client '{_s(client)}' is not one of gateway.auth.apiKeys.clients, so the "
            "gateway's secret holds no key for it", f"add '{_s(client)}' to gateway.auth.apiKeys.clients (and to "
            "terraform's gateway_api_clients, which generates its key)")
