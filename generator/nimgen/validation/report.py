"""A validation report as text for people, JSON for tools and JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict

from nimgen.validation import closure
from nimgen.validation.findings import SEVERITIES, UP_FRONT, Finding, Report

# The JUnit suite and test case of findings about the whole run rather than one environment.
RUN_SUITE, RUN_CASE = "(all environments)", "(run)"


def summary(report: Report) -> str:
    """`N manifests, M Applications, E errors` plus warnings and notices when there are any."""
    counts = {severity: report.count(severity) for severity in SEVERITIES}
    parts = [f"{report.manifests} manifests", f"{report.applications} Applications",
             f"{counts['error']} error{'s' if counts['error'] != 1 else ''}"]
    parts += [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("warning", "notice") if counts[s]]
    return ", ".join(parts)


def _where(finding: Finding) -> str:
    parts = [p for p in (finding.environment, finding.application) if p]
    place = "/".join(parts)
    if finding.obj:
        place += f" {finding.obj}"
    if finding.path:
        place += f" {finding.path}"
    if finding.location:
        place += f" {finding.location}"
    return place.strip()


def _line(finding: Finding) -> str:
    where = _where(finding)
    return f"{finding.severity}: {where + ': ' if where else ''}[{finding.check}] {finding.message}"


def _text_lines(findings: list[Finding]) -> list[str]:
    return [line for f in findings for line in [_line(f), *([f"    hint: {f.hint}"] if f.hint else [])]]


def as_text(report: Report) -> str:
    """What qualifies the whole report first (UP_FRONT), then the bootstrap order, the findings and the summary."""
    findings = report.sorted_findings()
    lines = [*_text_lines([f for f in findings if f.check in UP_FRONT]),
             *[line for env, steps in report.bootstrap.items() for line in closure.order_text(env, steps)],
             *_text_lines([f for f in findings if f.check not in UP_FRONT])]
    if report.unevaluated_rules:
        lines.append(f"{len(report.unevaluated_rules)} CEL rules of the CRD schemas could not be evaluated "
                     "(listed with --output json); they are neither passed nor failed")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    document = {
        "summary": {"environments": report.environments, "manifests": report.manifests,
                    "applications": report.applications,
                    **{f"{severity}s": report.count(severity) for severity in SEVERITIES}, "ok": report.ok},
        "findings": [finding.as_dict() for finding in report.sorted_findings()],
        "unevaluatedCelRules": [{"schema": schema, "rule": rule, "reason": reason}
                                for schema, rule, reason in sorted(report.unevaluated_rules)],
        "unreachableSchemaLocations": [{"location": location, "reason": reason}
                                       for location, reason in sorted(report.unreachable.items())],
        "uncheckedKinds": [{"apiVersion": api_version, "kind": kind, "objects": count}
                           for (api_version, kind), count in sorted(report.unchecked.items())],
        "bootstrap": report.bootstrap,
    }
    return json.dumps(document, indent=2) + "\n"


def as_junit(report: Report) -> str:
    """One test suite per environment, one test case per Application (and one for the environment itself), and a
    suite of its own for findings about the whole run (CRD schemas that could not be fetched)."""
    by_case: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in report.sorted_findings():
        by_case[(finding.environment or RUN_SUITE,
                 finding.application or ("(environment)" if finding.environment else RUN_CASE))].append(finding)
    suites = ET.Element("testsuites", name="nimgen validate", failures=str(report.count("error")))
    run_wide = [RUN_SUITE] if any(env == RUN_SUITE for env, _ in by_case) else []
    for environment in [*run_wide, *report.environments]:
        cases = sorted({name for env, name in [*by_case, *report.checked] if env == environment})
        suite = ET.SubElement(suites, "testsuite", name=environment)
        failures = 0
        for name in cases or ["(environment)"]:
            case = ET.SubElement(suite, "testcase", classname=f"nimgen.{environment}", name=name)
            found = by_case.get((environment, name), [])
            errors = [f for f in found if f.severity == "error"]
            if errors:
                failures += 1
                failure = ET.SubElement(case, "failure", message=f"{len(errors)} error(s)", type="nimgen")
                failure.text = "\n".join(_text_lines(errors))
            others = [f for f in found if f.severity != "error"]
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(_text_lines(others))
        suite.set("tests", str(len(cases or ["(environment)"])))
        suite.set("failures", str(failures))
    suites.set("tests", str(sum(int(suite.get("tests", "0")) for suite in suites)))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


FORMATS = {"text": as_text, "json": as_json, "junit": as_junit}
