"""Alertmanager receivers and the monitoring stack's volumes, as kube-prometheus-stack values.

A receiver's URL or routing key lives in AWS Secrets Manager. The platform-secrets chart copies it into
the Secret `alertmanager-receiver-<name>` (External Secrets), `alertmanager.alertmanagerSpec.secrets`
mounts that Secret into the Alertmanager pods (the Prometheus Operator puts each listed Secret at
/etc/alertmanager/secrets/<secret>/), and the receiver reads it there through Alertmanager's `*_file` fields:
no value ever passes through Git, Helm values or the Alertmanager configuration Secret.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from nimgen.components.base import Add
from nimgen.errors import shorten as _s
from nimgen.model import MonitoringStorage, Observability, Receiver, parse_quantity

SECRET_PREFIX = "alertmanager-receiver-"
# Alertmanager's ServiceAccount (kube-prometheus-stack's default name under nimgen's fullnameOverride), which
# terraform/alerting.tf gives a role that may publish to the SNS receivers' topics.
ALERTMANAGER_SERVICE_ACCOUNT = "kube-prometheus-stack-alertmanager"
# Where the Prometheus Operator mounts alertmanagerSpec.secrets (pkg/alertmanager/statefulset.go, secretsDir).
SECRETS_DIR = "/etc/alertmanager/secrets"
# The JSON key of the Secrets Manager secret, also the key of the Secret, per receiver type.
SECRET_KEYS = {"slack": "url", "webhook": "url", "pagerduty": "routing-key"}
# The Alertmanager config field that reads that file, per receiver type (Alertmanager config/notifiers.go).
FILE_FIELDS = {"slack": "api_url_file", "webhook": "url_file", "pagerduty": "routing_key_file"}
# kube-prometheus-stack's own receiver for what nobody should hear about (Watchdog, info, unrouted alerts).
NULL_RECEIVER = "null"
# Every nimgen alert carries `model`; grouping on it keeps two models' outages in separate notifications.
GROUP_BY = ["namespace", "alertname", "model"]
# Alertmanager's default Slack text is empty: show each alert's summary and description.
SLACK_TEXT = "{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n{{ end }}"
# PagerDuty's default severity is "error" for everything: pass on whether it is an outage.
PAGERDUTY_SEVERITY = '{{ if eq .CommonLabels.severity "critical" }}critical{{ else }}warning{{ end }}'
_BYTE_UNITS = {"MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def secret_name(receiver: Receiver) -> str:
    """The Secret holding the receiver's URL or key, in the monitoring namespace."""
    return f"{SECRET_PREFIX}{receiver.name}"


def secret_path(receiver: Receiver) -> str:
    """Where Alertmanager reads the receiver's URL or key."""
    return f"{SECRETS_DIR}/{secret_name(receiver)}/{SECRET_KEYS[receiver.type]}"


def receiver_secrets(obs: Observability) -> list[dict[str, Any]]:
    """platform-secrets items: one Secret per receiver with a URL or key, from its Secrets Manager JSON secret."""
    return [{"name": secret_name(r), "namespace": obs.namespace, "remoteKey": r.remote_key,
             "keys": [SECRET_KEYS[r.type]]} for r in obs.receivers if r.type in SECRET_KEYS]


def topic_region(topic_arn: str) -> str:
    """The region of an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)."""
    return topic_arn.split(":")[3]


def _notifier(receiver: Receiver) -> dict[str, Any]:
    if receiver.type == "sns":
        # No key: Alertmanager's AWS SDK finds EKS Pod Identity's credentials in its default chain. The region is
        # explicit, as nothing else gives the notifier one.
        return {"topic_arn": receiver.topic_arn, "sigv4": {"region": topic_region(receiver.topic_arn)},
                "send_resolved": receiver.send_resolved}
    config: dict[str, Any] = {FILE_FIELDS[receiver.type]: secret_path(receiver), "send_resolved": receiver.send_resolved}
    if receiver.type == "slack":
        config["text"] = SLACK_TEXT
        if receiver.channel:
            config["channel"] = receiver.channel
    elif receiver.type == "pagerduty":
        config["severity"] = PAGERDUTY_SEVERITY
    return config


def _matcher(severities: tuple[str, ...]) -> str:
    return f'severity = "{severities[0]}"' if len(severities) == 1 else f'severity =~ "{"|".join(severities)}"'


def alertmanager_config(obs: Observability) -> dict[str, Any]:
    """alertmanager.config: route each severity to the receivers that list it (an alert may reach several).

    Helm replaces lists and merges maps, so `route` and `receivers` replace the chart's own while its
    `global`, `inhibit_rules` (critical silences warning of the same alert) and `templates` stay.
    """
    routes: list[dict[str, Any]] = [{"receiver": NULL_RECEIVER, "matchers": ['alertname = "Watchdog"']}]
    routes += [{"receiver": r.name, "matchers": [_matcher(r.severities)], "continue": True} for r in obs.receivers]
    return {
        "route": {"receiver": NULL_RECEIVER, "group_by": GROUP_BY, "group_wait": "30s", "group_interval": "5m",
                  "repeat_interval": obs.repeat_interval, "routes": routes},
        "receivers": [{"name": NULL_RECEIVER},
                      *({"name": r.name, f"{r.type}_configs": [_notifier(r)]} for r in obs.receivers)],
    }


def _claim(storage_class: str, size: str) -> dict[str, Any]:
    return {"volumeClaimTemplate": {"spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                                             "resources": {"requests": {"storage": size}}}}}


def prometheus_spec(storage: MonitoringStorage) -> dict[str, Any]:
    """prometheus.prometheusSpec: the TSDB on a volume, kept by age and by size."""
    return {"retention": storage.retention, "retentionSize": storage.retention_size,
            "storageSpec": _claim(storage.storage_class, storage.size)}


def alertmanager_values(obs: Observability) -> dict[str, Any]:
    """alertmanager: its volume, the receivers' Secrets mounted, and the routing (when receivers are set)."""
    assert obs.storage is not None
    spec: dict[str, Any] = {"storage": _claim(obs.storage.storage_class, obs.storage.alertmanager_size)}
    if not obs.receivers:
        return {"alertmanagerSpec": spec}
    mounted = [secret_name(r) for r in obs.receivers if r.type in SECRET_KEYS]
    if mounted:
        spec["secrets"] = mounted
    values: dict[str, Any] = {"alertmanagerSpec": spec, "config": alertmanager_config(obs)}
    if any(r.type == "sns" for r in obs.receivers):
        # The name terraform/ associates the SNS-publishing role with (EKS Pod Identity): said, not left to the chart.
        values["serviceAccount"] = {"create": True, "name": ALERTMANAGER_SERVICE_ACCOUNT}
    return values


def byte_size(text: str) -> Decimal | None:
    """Bytes of a Prometheus size such as 40GiB (None when it is not one)."""
    for unit, factor in _BYTE_UNITS.items():
        number = text[: -len(unit)]
        if text.endswith(unit) and number.isdigit():
            return Decimal(number) * factor
    return None


def check(document: Any, add: Add) -> None:
    """Receivers need the stack's Alertmanager and distinct names; retentionSize must leave room on the volume."""
    obs = document.get("observability") or {}
    if not isinstance(obs, dict):
        return
    stack = obs.get("prometheusStack") or {}
    receivers = (obs.get("alerting") or {}).get("receivers") or []
    base = ["observability", "alerting", "receivers"]
    if receivers and isinstance(receivers, list):
        if not obs.get("enabled"):
            add(base, "alert receivers are set but observability is off: nothing sends them alerts",
                "set observability.enabled: true, or remove observability.alerting", warning=True)
        elif isinstance(stack, dict) and stack.get("enabled", True) is False:
            add(base, "alert receivers configure the Alertmanager of kube-prometheus-stack, which "
                "prometheusStack.enabled: false leaves out", "route alerts in the Alertmanager of your own "
                "Prometheus, or set observability.prometheusStack.enabled: true")
        _check_receivers(receivers, base, add)
    storage = stack.get("storage") if isinstance(stack, dict) else None
    if isinstance(storage, dict) and isinstance(storage.get("retentionSize"), str):
        kept, size = byte_size(storage["retentionSize"]), storage.get("size", "50Gi")
        try:
            volume = parse_quantity(size) if isinstance(size, str) else None
        except ValueError:
            volume = None
        if kept is not None and volume is not None and kept >= volume * Decimal("0.95"):
            add(["observability", "prometheusStack", "storage", "retentionSize"],
                f"retentionSize {_s(storage['retentionSize'])} leaves no room on the {_s(size)} volume: the WAL and "
                "compactions need some, and a full volume stops Prometheus", "keep retentionSize at most about 80% "
                "of size (the default), or raise size")


def _check_receivers(receivers: list[Any], base: list[Any], add: Add) -> None:
    seen: dict[str, int] = {}
    for index, receiver in enumerate(receivers):
        if not isinstance(receiver, dict) or not isinstance(receiver.get("name"), str):
            continue
        name = receiver["name"]
        if name == NULL_RECEIVER:
            add([*base, index, "name"], f"receiver name '{NULL_RECEIVER}' is kube-prometheus-stack's receiver of "
                "silenced alerts", "choose another name")
        elif name in seen:
            add([*base, index, "name"], f"receiver '{_s(name)}' is defined twice (also receivers[{seen[name]}])",
                "give each receiver its own name")
        seen.setdefault(name, index)
        kind = receiver.get("type")
        if kind == "sns":
            if "externalSecret" in receiver:
                add([*base, index, "externalSecret"], f"receiver '{_s(name)}' publishes to an SNS topic with "
                    "Alertmanager's own AWS identity: it reads no secret", "remove externalSecret")
            if "topicArn" not in receiver:
                add([*base, index], f"SNS receiver '{_s(name)}' has no topicArn", "set topicArn, e.g. "
                    "arn:aws:sns:us-west-2:123456789012:nim-alerts")
        elif isinstance(kind, str):
            if "topicArn" in receiver:
                add([*base, index, "topicArn"], f"topicArn is an SNS setting, and receiver '{_s(name)}' is of type "
                    f"{_s(kind)}", "remove topicArn, or use type: sns")
            if "externalSecret" not in receiver:
                add([*base, index], f"receiver '{_s(name)}' has no externalSecret: its {SECRET_KEYS.get(kind, 'url')} "
                    "comes from Secrets Manager", "set externalSecret to the Secrets Manager secret holding it")
        remote = receiver.get("externalSecret")
        # A name of Secrets Manager never holds "://" (nor is a PagerDuty key's 32 bare characters): such a value is
        # the credential itself, about to be written to Git. Not echoed.
        if isinstance(remote, str) and ("://" in remote or re.fullmatch(r"[A-Za-z0-9]{32}", remote)):
            add([*base, index, "externalSecret"], f"externalSecret of receiver '{_s(name)}' looks like the URL or "
                "key itself, not the name of the Secrets Manager secret holding it", "store the value in Secrets "
                f"Manager as a JSON object with key {SECRET_KEYS.get(str(receiver.get('type')), 'url')}, write the "
                "secret's name here, and rotate the value")
        if "channel" in receiver and receiver.get("type") != "slack":
            add([*base, index, "channel"], f"channel is a Slack setting, and receiver '{_s(name)}' is of type "
                f"{_s(str(receiver.get('type')))}", "remove channel, or use type: slack")
