"""Every platform component nimgen renders, in order.

The order is the order of their kinds in the platform AppProject and of their notes in the
environment README; sync order comes from each Application's wave, not from here.
"""

from __future__ import annotations

from nimgen.components import (
    blockstorage,
    deviceplugin,
    gateway,
    monitoring,
    nodepools,
    openwebui,
    platformsecrets,
    storage,
)
from nimgen.components.base import Component
from nimgen.components.models import Models
from nimgen.model import Environment

COMPONENTS: tuple[Component, ...] = (
    Models(),
    nodepools.NodePools(),
    deviceplugin.DevicePlugin(),
    storage.ModelStorage(),
    blockstorage.BlockStorage(),
    platformsecrets.PlatformSecrets(),
    monitoring.PrometheusStack(),
    monitoring.PrometheusAdapter(),
    monitoring.Keda(),
    monitoring.DcgmExporter(),
    monitoring.Dashboards(),
    openwebui.OpenWebUI(),
    gateway.FrontDoor(),
)


def enabled(env: Environment) -> list[Component]:
    """The components `env` uses, in registry order."""
    return [component for component in COMPONENTS if component.enabled(env)]


def reserved_application_names(env_name: str) -> dict[str, str]:
    """Application names nimgen gives besides the models' (in Argo CD's namespace), and what each is.

    Every platform Application counts, enabled or not: turning one on later must not collide with a model.
    """
    names = {f"{env_name}-root": "the root Application", f"{env_name}-bench": "the benchmark Application"}
    for component in COMPONENTS:
        names.update({name: f"the platform Application {name}" for name in component.application_names})
    return names
