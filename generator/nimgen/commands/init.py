"""`nimgen init`: a new GitOps repository that works at once.

Environment files and the README are text people edit (Jinja templates, comments kept); the CI
workflow and the pre-commit configuration are built as data and dumped. The new repository is
rendered right away, so `nimgen check` and `nimgen validate` pass on it before the first commit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from nimgen.commands.render import render_files
from nimgen.environment.schema import ecma_regex, environment_schema
from nimgen.errors import UserError, shown
from nimgen.gitops.writer import create_files
from nimgen.templating import render_text
from nimgen.yamlio import dump

WORKFLOW = PurePosixPath(".github/workflows/nimgen.yml")
PRE_COMMIT = PurePosixPath(".pre-commit-config.yaml")
ENVIRONMENTS = ("dev", "prod")
# Paths whose change can change what Argo CD applies.
WATCHED = ("environments/**", "charts/**", "argocd/**", str(WORKFLOW))
HEADER = "# Created by nimgen init; yours to edit.\n"
# Top-level folders `nimgen render` adds.
RENDERED = ("charts", "argocd")


def workflow(nimgen_spec: str, default_branch: str) -> dict[str, Any]:
    """GitHub Actions: check and validate every push and pull request; comment the diff on pull requests."""
    diff_script = (
        "set -euo pipefail\n"
        ": > diff.md\n"
        "envs=$(ls environments/*.yaml | grep -v '/_')\n"
        "# All environments share one comment, and a comment holds at most 65,536 characters.\n"
        "limit=$(( 65000 / $(echo \"$envs\" | wc -l) ))\n"
        "for env in $envs; do\n"
        '  nimgen diff "$env" --base "origin/$BASE_REF" --format markdown --limit "$limit" >> diff.md\n'
        "done\n"
        "# One comment per pull request, edited on each push.\n"
        'gh pr comment "$PR" --edit-last --body-file diff.md || gh pr comment "$PR" --body-file diff.md\n'
    )
    return {
        "name": "nimgen",
        "on": {
            "pull_request": {"paths": list(WATCHED)},
            "push": {"branches": [default_branch], "paths": list(WATCHED)},
        },
        "permissions": {"contents": "read"},
        "concurrency": {"group": "nimgen-${{ github.ref }}", "cancel-in-progress": True},
        "jobs": {
            "nimgen": {
                "runs-on": "ubuntu-latest",
                "permissions": {"contents": "read", "pull-requests": "write"},
                "steps": [
                    # Full history: nimgen diff reads the base side through git.
                    {"uses": "actions/checkout@v4", "with": {"fetch-depth": 0}},
                    {"uses": "actions/setup-python@v5", "with": {"python-version": "3.12"}},
                    {"name": "Install nimgen", "run": 'pip install "$NIMGEN_SPEC"',
                     "env": {"NIMGEN_SPEC": nimgen_spec}},
                    {"name": "Rendered files are current", "run": "nimgen check"},
                    {"name": "What Argo CD will apply is valid", "run": "nimgen validate"},
                    {"name": "Comment the diff", "if": "github.event_name == 'pull_request'",
                     "env": {"GH_TOKEN": "${{ github.token }}", "PR": "${{ github.event.pull_request.number }}",
                             "BASE_REF": "${{ github.base_ref }}"},
                     "run": diff_script},
                ],
            }
        },
    }


def pre_commit_config() -> dict[str, Any]:
    """pre-commit: `nimgen check` whenever an environment or a rendered file is committed."""
    return {"repos": [{"repo": "local", "hooks": [{
        "id": "nimgen-check", "name": "nimgen check (rendered files are current)", "entry": "nimgen check",
        "language": "system", "pass_filenames": False, "files": "^(environments|charts|argocd)/"}]}]}


def _check_settings(repo_url: str, cluster_prefix: str, region: str, kubernetes_version: str) -> None:
    """Refuse settings the environment schema would refuse: the templates write them into YAML unquoted, so a
    newline in --repo-url could add keys of its own (e.g. a destinationServer) to the new environment files."""
    schema = environment_schema()
    cluster = schema["properties"]["cluster"]["properties"]
    karpenter = cluster["karpenter"]["properties"]
    checks = [("--repo-url", repo_url, repo_url, "gitops.repoURL", schema["properties"]["gitops"]["properties"]["repoURL"]),
              ("--region", region, region, "cluster.region", schema["$defs"]["awsRegion"]),
              ("--kubernetes-version", kubernetes_version, kubernetes_version, "cluster.kubernetesVersion",
               cluster["kubernetesVersion"])]
    for env in ENVIRONMENTS:
        name = f"{cluster_prefix}-{env}"
        checks += [("--cluster-prefix", cluster_prefix, name, "cluster.name", cluster["name"]),
                   ("--cluster-prefix", cluster_prefix, f"KarpenterNodeRole-{name}", "cluster.karpenter.nodeRole",
                    karpenter["nodeRole"]),
                   ("--cluster-prefix", cluster_prefix, name, "cluster.karpenter.discoveryTag", karpenter["discoveryTag"])]
    for option, given, value, key, field in checks:
        if ecma_regex(field["pattern"]).find(value) is None:
            raise UserError(f"{option} {shown(given)} is not usable in an environment file (as {key} {shown(value)})",
                            hint=field.get("x-hint", f"it must match {field['pattern']}"))


def scaffold_files(*, repo_url: str, cluster_prefix: str, region: str, kubernetes_version: str,
                   nimgen_spec: str, default_branch: str = "main") -> dict[PurePosixPath, str]:
    """The files `nimgen init` creates before rendering."""
    _check_settings(repo_url, cluster_prefix, region, kubernetes_version)
    context = {"repo_url": repo_url, "cluster_prefix": cluster_prefix, "region": region,
               "kubernetes_version": kubernetes_version}
    files = {PurePosixPath("environments") / f"{name}.yaml": render_text(f"init/{name}.yaml.j2", **context)
             for name in ("_defaults", *ENVIRONMENTS)}
    files[PurePosixPath("README.md")] = render_text("init/README.md.j2", **context)
    files[WORKFLOW] = HEADER + dump(workflow(nimgen_spec, default_branch))
    files[PRE_COMMIT] = HEADER + dump(pre_commit_config())
    return files


def init_repository(target: Path, **settings: str) -> list[PurePosixPath]:
    """Create and render the repository beside `target`, then move it in: a failure leaves `target` as it was.

    Returns every file created, relative to `target`.
    """
    target.mkdir(parents=True, exist_ok=True)
    files = scaffold_files(**settings)
    ours = {PurePosixPath(path.parts[0]) for path in files} | {PurePosixPath(name) for name in RENDERED}
    clashes = sorted(ours & {PurePosixPath(entry.name) for entry in target.iterdir()})
    if clashes:
        raise UserError(f"{target} already has {', '.join(map(str, clashes))}",
                        hint="run nimgen init in a new or empty folder")
    with tempfile.TemporaryDirectory(prefix=".nimgen-init-", dir=target) as staging:
        stage = Path(staging)
        create_files(stage, files)
        render_files([stage / "environments" / f"{name}.yaml" for name in ENVIRONMENTS])
        created = sorted(PurePosixPath(p.relative_to(stage).as_posix()) for p in stage.rglob("*") if p.is_file())
        for entry in sorted(stage.iterdir()):
            entry.rename(target / entry.name)
    return created
