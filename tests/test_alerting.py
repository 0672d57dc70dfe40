"""Alertmanager receivers from the environment (secrets by file, from Secrets Manager), alerts routed by
severity, and Prometheus' and Alertmanager's data on volumes of the block StorageClass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment
from helpers import VALID, monitoring_apps, run, write_env
from kube import application_objects, crd_errors
from nimgen import helm
from nimgen.components import alerting, blockstorage, monitoring, platformsecrets
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.model import Environment, Prerequisite, Ref

RECEIVERS = """\
  alerting:
    receivers:
      - {name: oncall, type: pagerduty, externalSecret: nim-test/alerting/pagerduty}
      - {name: team, type: slack, externalSecret: nim-test/alerting/slack, channel: "#nim-alerts"}
      - {name: audit, type: webhook, externalSecret: "arn:aws:secretsmanager:us-west-2:111122223333:secret:hook",
         severities: [critical, warning, info], sendResolved: false}
"""


def _text(observability: str = "") -> str:
    return VALID.replace("models:\n", f"observability:\n  enabled: true\n{observability}models:\n")


def _env(tmp_path: Path, observability: str = "", extra: str = "") -> Environment:
    return load_environment(write_env(tmp_path, _text(observability) + extra), tmp_path)


def _stack_values(env: Environment) -> dict[str, Any]:
    values: dict[str, Any] = monitoring_apps(env)[monitoring.PROMETHEUS_STACK_RELEASE]["spec"]["source"]["helm"][
        "valuesObject"]
    return values


def test_receivers_are_loaded_with_severity_defaults(tmp_path: Path) -> None:
    obs = _env(tmp_path, RECEIVERS).observability
    assert obs is not None
    assert [(r.name, r.type, r.remote_key, r.severities, r.channel, r.send_resolved) for r in obs.receivers] == [
        ("oncall", "pagerduty", "nim-test/alerting/pagerduty", ("critical",), "", True),
        ("team", "slack", "nim-test/alerting/slack", ("critical", "warning"), "#nim-alerts", True),
        ("audit", "webhook", "arn:aws:secretsmanager:us-west-2:111122223333:secret:hook",
         ("critical", "warning", "info"), "", False)]
    assert obs.repeat_interval == "4h"


def test_alerts_are_routed_by_severity_and_keys_read_from_files(tmp_path: Path) -> None:
    values = _stack_values(_env(tmp_path, RECEIVERS))["alertmanager"]
    secrets = "/etc/alertmanager/secrets/alertmanager-receiver-"
    assert values["alertmanagerSpec"]["secrets"] == [
        "alertmanager-receiver-oncall", "alertmanager-receiver-team", "alertmanager-receiver-audit"]
    assert values["config"] == {
        "route": {"receiver": "null", "group_by": ["namespace", "alertname", "model"], "group_wait": "30s",
                  "group_interval": "5m", "repeat_interval": "4h", "routes": [
                      {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                      {"receiver": "oncall", "matchers": ['severity = "critical"'], "continue": True},
                      {"receiver": "team", "matchers": ['severity =~ "critical|warning"'], "continue": True},
                      {"receiver": "audit", "matchers": ['severity =~ "critical|warning|info"'], "continue": True}]},
        "receivers": [
            {"name": "null"},
            {"name": "oncall", "pagerduty_configs": [{"routing_key_file": f"{secrets}oncall/routing-key",
                                                      "send_resolved": True, "severity": alerting.PAGERDUTY_SEVERITY}]},
            {"name": "team", "slack_configs": [{"api_url_file": f"{secrets}team/url", "send_resolved": True,
                                                "text": alerting.SLACK_TEXT, "channel": "#nim-alerts"}]},
            {"name": "audit", "webhook_configs": [{"url_file": f"{secrets}audit/url", "send_resolved": False}]}]}


SNS = """\
  alerting:
    receivers:
      - {name: team, type: slack, externalSecret: nim-test/alerting/slack}
      - {name: ops, type: sns, topicArn: "arn:aws:sns:eu-west-1:111122223333:nim-alerts", severities: [critical]}
"""


def test_an_sns_receiver_publishes_with_alertmanagers_own_identity(tmp_path: Path) -> None:
    env = _env(tmp_path, SNS)
    assert env.observability is not None
    [_, ops] = env.observability.receivers
    assert (ops.type, ops.topic_arn, ops.remote_key) == ("sns", "arn:aws:sns:eu-west-1:111122223333:nim-alerts", "")
    values = _stack_values(env)["alertmanager"]
    # Signed for the topic's region with credentials from EKS Pod Identity: no key anywhere, no Secret mounted.
    assert values["config"]["receivers"][2] == {"name": "ops", "sns_configs": [{
        "topic_arn": "arn:aws:sns:eu-west-1:111122223333:nim-alerts", "sigv4": {"region": "eu-west-1"},
        "send_resolved": True}]}
    assert values["alertmanagerSpec"]["secrets"] == ["alertmanager-receiver-team"]
    # The ServiceAccount terraform/ associates the publishing role with, named rather than left to the chart.
    assert values["serviceAccount"] == {"create": True, "name": "kube-prometheus-stack-alertmanager"}
    assert [s["name"] for s in alerting.receiver_secrets(env.observability)] == ["alertmanager-receiver-team"]
    # Without an SNS receiver the chart's own ServiceAccount settings stay.
    assert "serviceAccount" not in _stack_values(_env(tmp_path / "other", RECEIVERS))["alertmanager"]


def test_only_sns_receivers_mount_no_secret_at_all(tmp_path: Path) -> None:
    only = "  alerting:\n    receivers:\n      - {name: ops, type: sns, topicArn: 'arn:aws:sns:us-west-2:111122223333:t'}\n"
    values = _stack_values(_env(tmp_path, only))["alertmanager"]
    assert "secrets" not in values["alertmanagerSpec"]
    assert values["config"]["receivers"][1]["sns_configs"][0]["sigv4"] == {"region": "us-west-2"}


def test_no_receiver_leaves_the_charts_alertmanager_config(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert env.observability is not None and env.observability.receivers == ()
    values = _stack_values(env)["alertmanager"]
    assert set(values) == {"alertmanagerSpec"} and set(values["alertmanagerSpec"]) == {"storage", "resources"}


def test_receiver_secrets_come_from_secrets_manager(tmp_path: Path, rendered_repo: Path, helm_engine: helm.Engine,
                                                   crd_schemas: Path) -> None:
    env = _env(tmp_path, RECEIVERS)
    app = applications.by_name(env)["platform-secrets"]
    assert app["spec"]["source"]["helm"]["valuesObject"]["secrets"] == [
        {"name": "alertmanager-receiver-oncall", "namespace": "monitoring", "remoteKey": "nim-test/alerting/pagerduty",
         "keys": ["routing-key"]},
        {"name": "alertmanager-receiver-team", "namespace": "monitoring", "remoteKey": "nim-test/alerting/slack",
         "keys": ["url"]},
        {"name": "alertmanager-receiver-audit", "namespace": "monitoring",
         "remoteKey": "arn:aws:secretsmanager:us-west-2:111122223333:secret:hook", "keys": ["url"]}]
    objects = application_objects(helm_engine, rendered_repo, app)
    externals = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ExternalSecret"}
    assert all(crd_errors(o, crd_schemas) == [] for o in externals.values())
    pagerduty = externals["alertmanager-receiver-oncall"]
    assert pagerduty["metadata"]["namespace"] == "monitoring"
    assert pagerduty["spec"]["data"] == [{"secretKey": "routing-key", "remoteRef": {
        "key": "nim-test/alerting/pagerduty", "property": "routing-key"}}]
    assert not [o for o in objects if o["kind"] == "Secret"]
    # The stack's values name files and Secrets, never where the values live.
    stack = json.dumps(_stack_values(env))
    assert "nim-test/alerting" not in stack and "secretsmanager" not in stack


def test_the_stack_syncs_after_what_alertmanager_and_prometheus_mount(tmp_path: Path) -> None:
    env = _env(tmp_path, RECEIVERS, "    cache: {type: emptyDir}\n")
    assert monitoring.PrometheusStack().needs(env)[monitoring.PROMETHEUS_STACK_RELEASE] == (
        Ref("Secret", "monitoring", "grafana-admin"), Ref("StorageClass", "", "nimgen-gp3"),
        Ref("Secret", "monitoring", "alertmanager-receiver-oncall"), Ref("Secret", "monitoring", "alertmanager-receiver-team"),
        Ref("Secret", "monitoring", "alertmanager-receiver-audit"))
    # No model or add-on claims a block volume here: Prometheus alone brings nimgen's StorageClass.
    assert blockstorage.claims_using(env) == ["Prometheus and Alertmanager"]
    apps = applications.by_name(env)

    def wave(name: str) -> int:
        return int(apps[name]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])

    assert wave("platform-secrets") < wave("kube-prometheus-stack") and wave("block-storage") < wave(
        "kube-prometheus-stack")


def test_prometheus_keeps_its_data_on_a_volume(tmp_path: Path) -> None:
    spec = _stack_values(example_environment("prod"))["prometheus"]["prometheusSpec"]
    claim = {"spec": {"storageClassName": "nimgen-gp3", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "50Gi"}}}}
    assert (spec["retention"], spec["retentionSize"], spec["storageSpec"]) == ("15d", "40GiB", {"volumeClaimTemplate": claim})
    alertmanager = _stack_values(example_environment("prod"))["alertmanager"]["alertmanagerSpec"]["storage"]
    assert alertmanager["volumeClaimTemplate"]["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


@pytest.mark.parametrize(("storage", "expected"), [
    ("{size: 200Gi}", ("200Gi", "15d", "160GiB")),
    ("{size: 4Gi, retention: 2w}", ("4Gi", "2w", "3276MiB")),
    ("{size: 100Gi, retentionSize: 90GiB, retention: 720h}", ("100Gi", "720h", "90GiB")),
])
def test_storage_settings(tmp_path: Path, storage: str, expected: tuple[str, str, str]) -> None:
    obs = _env(tmp_path, f"  prometheusStack:\n    storage: {storage}\n").observability
    assert obs is not None and obs.storage is not None
    assert (obs.storage.size, obs.storage.retention, obs.storage.retention_size) == expected


def test_an_own_storage_class_is_a_prerequisite(tmp_path: Path) -> None:
    env = _env(tmp_path, "  prometheusStack:\n    storage: {storageClassName: io2-retain}\n",
               "    cache: {type: emptyDir}\n")
    assert _stack_values(env)["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"][
        "storageClassName"] == "io2-retain"
    assert blockstorage.claims_using(env) == [] and "block-storage" not in applications.by_name(env)
    assert Prerequisite(Ref("StorageClass", "", "io2-retain"), "Prometheus' and Alertmanager's volumes "
                        "(observability.prometheusStack.storage.storageClassName)") in \
        monitoring.PrometheusStack().prerequisites(env)


def test_platform_secrets_creates_the_monitoring_namespace_for_receivers(tmp_path: Path) -> None:
    env = _env(tmp_path, RECEIVERS)
    assert "monitoring" in platformsecrets.namespaces(env)


@pytest.mark.parametrize(("observability", "expected"), [
    (("  alerting:\n    receivers:\n      - {name: a, type: slack, externalSecret: s/a}\n"
     "      - {name: a, type: webhook, externalSecret: s/b}\n"),
     "$.observability.alerting.receivers[1].name: receiver 'a' is defined twice (also receivers[0])"),
    ("  alerting:\n    receivers:\n      - {name: 'null', type: slack, externalSecret: s/a}\n",
     ("$.observability.alerting.receivers[0].name: receiver name 'null' is kube-prometheus-stack's receiver of "
     "silenced alerts")),
    ("  alerting:\n    receivers:\n      - {name: p, type: pagerduty, externalSecret: s/a, channel: '#x'}\n",
     "$.observability.alerting.receivers[0].channel: channel is a Slack setting, and receiver 'p' is of type pagerduty"),
    (("  prometheusStack: {enabled: false}\n  prometheusUrl: http://prometheus.example.svc:9090\n"
     "  alerting:\n    receivers:\n      - {name: a, type: slack, externalSecret: s/a}\n"),
     ("$.observability.alerting.receivers: alert receivers configure the Alertmanager of kube-prometheus-stack, which "
     "prometheusStack.enabled: false leaves out")),
    ("  prometheusStack:\n    storage: {size: 20Gi, retentionSize: 20GiB}\n",
     "$.observability.prometheusStack.storage.retentionSize: retentionSize 20GiB leaves no room on the 20Gi volume"),
    ("  alerting:\n    receivers:\n      - {name: a, type: sns, externalSecret: s/a}\n",
     ("$.observability.alerting.receivers[0].externalSecret: receiver 'a' publishes to an SNS topic with "
     "Alertmanager's own AWS identity: it reads no secret")),
    ("  alerting:\n    receivers:\n      - {name: a, type: sns}\n",
     "$.observability.alerting.receivers[0]: SNS receiver 'a' has no topicArn"),
    (("  alerting:\n    receivers:\n      - {name: a, type: slack, externalSecret: s/a,"
     " topicArn: 'arn:aws:sns:us-west-2:123456789012:t'}\n"),
     "$.observability.alerting.receivers[0].topicArn: topicArn is an SNS setting, and receiver 'a' is of type slack"),
    ("  alerting:\n    receivers:\n      - {name: a, type: sns, topicArn: 'arn:aws:sns:us-west-2:1234:t'}\n",
     "$.observability.alerting.receivers[0].topicArn: invalid value"),
    ("  alerting:\n    receivers:\n      - {name: a, type: slack}\n",
     "$.observability.alerting.receivers[0]: receiver 'a' has no externalSecret: its url comes from Secrets Manager"),
    ("  prometheusStack:\n    storage: {retention: 15 days}\n",
     ('$.observability.prometheusStack.storage.retention: invalid value "15 days"\n'
     "    hint: write a duration in hours, days or weeks, e.g. 15d")),
])
def test_bad_alerting_input_is_refused_where_it_is(tmp_path: Path, observability: str, expected: str) -> None:
    result = run("render", write_env(tmp_path, _text(observability)))
    assert result.exit_code == 1, result.output
    assert expected in result.output, result.output


@pytest.mark.parametrize(("kind", "value"), [("webhook", "https://alerts.example.com/hook/3f9a1c2e8b7d"),
                                            ("pagerduty", "R0123456789abcdef0123456789abcde")])
def test_a_credential_in_place_of_a_secret_name_is_refused_unechoed(tmp_path: Path, kind: str, value: str) -> None:
    text = _text(f"  alerting:\n    receivers:\n      - {{name: a, type: {kind}, externalSecret: '{value}'}}\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert ("$.observability.alerting.receivers[0].externalSecret: externalSecret of receiver 'a' looks like the URL "
            "or key itself, not the name of the Secrets Manager secret holding it") in result.output, result.output
    assert value not in result.output and not (tmp_path / "argocd").exists()


def test_receivers_without_observability_warn(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", "observability:\n  enabled: false\n" + RECEIVERS + "models:\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    assert ("$.observability.alerting.receivers: warning: alert receivers are set but observability is off: nothing "
            "sends them alerts\n    hint: set observability.enabled: true, or remove observability.alerting") in result.output
