"""nimgen's alert rules on Prometheus' own engine: `promtool check rules` on every model's groups, and
`promtool test rules` with synthetic series, the rule files written from `metrics.alert_groups` itself.

Each scenario is timed from the environment's thresholds and the model's startup budget, so a changed
default or example keeps testing the same promise: a cold start within budget stays quiet, a slow, full or
dead model fires exactly when its `for` has passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nimgen.components import metrics
from nimgen.model import Environment, Model
from nimgen.yamlio import dump, load_plain
from promtool import binary, environment_with_observability, example_names, run, write_rules


@pytest.fixture(scope="module")
def promtool() -> str:
    return binary("promtool")


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Environment]:
    root = tmp_path_factory.mktemp("envs")
    return {name: environment_with_observability(name, root / name) for name in example_names()}


def _models(environments: dict[str, Environment]) -> list[tuple[Environment, Model]]:
    return [(env, model) for env in environments.values() for model in env.models]


def test_every_rule_group_of_every_example_passes_promtool_check(promtool: str, environments: dict[str, Environment],
                                                                 tmp_path: Path) -> None:
    checked = []
    for env, model in _models(environments):
        groups = metrics.alert_groups(env, model)
        path = write_rules(tmp_path / f"{env.name}-{model.name}.yaml", groups)
        result = run(promtool, "check", "rules", path)
        assert result.returncode == 0, result.stdout + result.stderr
        rules = sum(len(group["rules"]) for group in groups)
        assert f"SUCCESS: {rules} rules found" in result.stdout, result.stdout
        checked.append((env.name, model.name))
    # dev (observability turned on for the test) and prod, every model.
    assert {name for name, _ in checked} == {"dev", "prod"} and len(checked) == 3


def test_promtool_check_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # The check above means something only if promtool refuses what Prometheus would.
    path = write_rules(tmp_path / "bad.yaml", [{"name": "g", "rules": [
        {"alert": "Broken", "expr": "sum(rate(x[5m])", "for": "10m"}]}])
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 1 and "FAILED" in result.stdout + result.stderr


# --- promtool test rules --------------------------------------------------------------------------------------

def _rule(env: Environment, model: Model, alert: str) -> dict[str, Any]:
    [rule] = [r for g in metrics.alert_groups(env, model) for r in g["rules"] if r["alert"] == alert]
    return rule


def _minutes(duration: str) -> int:
    assert duration.endswith("m"), duration
    return int(duration[:-1])


def _series(model: Model, metric: str, extra: str = "", pod: int = 0) -> str:
    """A series as the model's ServiceMonitor scrapes it: namespace, pod, job and the `model` label."""
    labels = (f'namespace="{model.namespace}", model="{model.name}", pod="{model.name}-{pod}", job="{model.name}", '
              f'endpoint="http-openai"')
    return f"{metric}{{{labels}{', ' + extra if extra else ''}}}"


def _firing(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert promtool must see firing: nimgen's labels and annotations, nothing else."""
    return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]


def _unit_test(promtool: str, tmp_path: Path, env: Environment, model: Model, series: list[dict[str, str]],
               checks: list[tuple[int, str, bool]]) -> Any:
    """Run one promtool unit test: `series` as input, (minute, alert, firing?) as expectations."""
    rules = write_rules(tmp_path / "rules.yaml", metrics.alert_groups(env, model))
    tests = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": f"{minute}m", "alertname": alert,
                             "exp_alerts": _firing(_rule(env, model, alert)) if firing else []}
                            for minute, alert, firing in checks]}]}
    path = tmp_path / "test.yaml"
    path.write_text(dump(tests), encoding="utf-8")
    assert load_plain(path.read_text())["tests"][0]["input_series"] == series
    return run(promtool, "test", "rules", path.name, cwd=tmp_path)


@pytest.fixture(params=example_names())
def cases(request: pytest.FixtureRequest, environments: dict[str, Environment],
          tmp_path: Path) -> list[tuple[Environment, Model, Path]]:
    """Every model of one example environment, each with its own folder."""
    env = environments[request.param]
    found = []
    for model in env.models:
        folder = tmp_path / model.name
        folder.mkdir()
        found.append((env, model, folder))
    assert found
    return found


def test_not_ready_waits_for_the_startup_budget(promtool: str, cases: list[tuple[Environment, Model, Path]]) -> None:
    for env, model, tmp_path in cases:
        budget = model.startup_timeout_minutes
        wait = _minutes(_rule(env, model, "NimModelNotReady")["for"])
        assert wait == budget + metrics.NOT_READY_MARGIN_MINUTES
        # A cold start that takes its whole budget: not a target at first, then scraped but down, then up.
        cold = [{"series": _series(model, "up"), "values": f"_x{budget // 2} 0x{budget - budget // 2 - 1} 1x60"}]
        result = _unit_test(promtool, tmp_path, env, model, cold, [
            (budget, "NimModelNotReady", False), (wait, "NimModelNotReady", False), (wait + 30, "NimModelNotReady", False)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_not_ready_fires_once_the_budget_is_spent(promtool: str, cases: list[tuple[Environment, Model, Path]]) -> None:
    for env, model, tmp_path in cases:
        wait = _minutes(_rule(env, model, "NimModelNotReady")["for"])
        dead = [{"series": _series(model, "up"), "values": f"0x{wait + 10}"}]
        result = _unit_test(promtool, tmp_path, env, model, dead, [
            (wait - 1, "NimModelNotReady", False), (wait, "NimModelNotReady", True)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(promtool: str, environments: dict[str, Environment], tmp_path: Path) -> None:
    # promtool really evaluates: claiming the model fires one minute early is refused.
    env = environments["prod"]
    model = env.models[0]
    wait = _minutes(_rule(env, model, "NimModelNotReady")["for"])
    dead = [{"series": _series(model, "up"), "values": f"0x{wait + 10}"}]
    result = _unit_test(promtool, tmp_path, env, model, dead, [(wait - 1, "NimModelNotReady", True)])
    assert result.returncode == 1 and "FAILED" in result.stdout + result.stderr


def _ttft_buckets(model: Model, threshold: float, slow: bool) -> list[dict[str, str]]:
    """60 requests a minute, all in one bucket: above the threshold (2t..4t) when slow, under t/4 otherwise."""
    bounds = [threshold / 4, threshold, 2 * threshold, 4 * threshold]
    full = {4 * threshold} if slow else set(bounds)
    series = [{"series": _series(model, "time_to_first_token_seconds_bucket", f'le="{bound:g}"'),
               "values": "0+60x40" if bound in full else "0x40"} for bound in bounds]
    series.append({"series": _series(model, "time_to_first_token_seconds_bucket", 'le="+Inf"'), "values": "0+60x40"})
    return series


def test_slow_first_tokens_fire_after_their_for(promtool: str, cases: list[tuple[Environment, Model, Path]]) -> None:
    for env, model, tmp_path in cases:
        assert env.observability is not None
        wait = _minutes(_rule(env, model, "NimTimeToFirstTokenHigh")["for"])
        series = _ttft_buckets(model, env.observability.alerts.ttft_p95_seconds, slow=True)
        # rate() needs two samples: the p95 is over the threshold from minute 1, so the alert fires at 1 + for.
        result = _unit_test(promtool, tmp_path, env, model, series, [
            (wait, "NimTimeToFirstTokenHigh", False), (wait + 1, "NimTimeToFirstTokenHigh", True)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_fast_first_tokens_stay_quiet(promtool: str, cases: list[tuple[Environment, Model, Path]]) -> None:
    for env, model, tmp_path in cases:
        assert env.observability is not None
        series = _ttft_buckets(model, env.observability.alerts.ttft_p95_seconds, slow=False)
        result = _unit_test(promtool, tmp_path, env, model, series, [(30, "NimTimeToFirstTokenHigh", False)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_full_kv_cache_fires_after_its_for(promtool: str, cases: list[tuple[Environment, Model, Path]]) -> None:
    for env, model, tmp_path in cases:
        assert env.observability is not None
        limit = env.observability.alerts.kv_cache_usage
        wait = _minutes(_rule(env, model, "NimKvCacheNearlyFull")["for"])
        # One replica saturated, the other idle: the alert takes the fullest cache.
        series = [{"series": _series(model, "gpu_cache_usage_perc"), "values": f"{(limit + 1) / 2:g}x30"},
                  {"series": _series(model, "gpu_cache_usage_perc", pod=1), "values": "0.1x30"}]
        result = _unit_test(promtool, tmp_path, env, model, series, [
            (wait - 1, "NimKvCacheNearlyFull", False), (wait, "NimKvCacheNearlyFull", True)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_kv_cache_under_the_limit_stays_quiet(promtool: str, cases: list[tuple[Environment, Model, Path]]) -> None:
    for env, model, tmp_path in cases:
        assert env.observability is not None
        series = [{"series": _series(model, "gpu_cache_usage_perc"),
                   "values": f"{env.observability.alerts.kv_cache_usage * 0.99:g}x30"}]
        result = _unit_test(promtool, tmp_path, env, model, series, [(30, "NimKvCacheNearlyFull", False)])
        assert result.returncode == 0, result.stdout + result.stderr
