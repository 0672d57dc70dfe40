"""`nimgen init`: a new GitOps repository that works at once.

Environment files and the README are text people edit (Jinja templates, comments kept); the CI
workflow and the pre-commit configuration are built as data and dumped. The new repository is
rendered right away, so `nimgen check` and `nimgen validate` pass on it before the first commit.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, metadata
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
# The actions the workflow uses, pinned to the commit of a release tag (a tag can be moved), with the tag in a
# comment beside the commit (Dependabot updates both).
ACTIONS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
}
# Why the workflow's job may write to pull requests, written beside the permission.
PULL_REQUESTS_WRITE = "to post the diff as a comment (gh pr comment)"


def default_nimgen_spec() -> str:
    """What the new repository's CI installs unless --nimgen-spec says otherwise: this nimgen, from the Git
    repository its package metadata names ("Source"), at the tag of its version; no package index has nimgen.

    e.g. `nimgen[validate] @ git+https://github.com/nimgen-dev/nimgen@v0.1.0`
    """
    hint = "pass --nimgen-spec with what CI should pip install, e.g. nimgen[validate] @ git+<URL>@<tag>"
    try:
        meta = metadata("nimgen")
    except PackageNotFoundError:
        raise UserError("nimgen runs without its package metadata, so its source repository is unknown",
                        hint=hint) from None
    urls = {}
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls["".join(char for char in label if char.isalnum()).lower()] = url.strip()
    source = urls.get("source", "").rstrip("/")
    if not source:
        raise UserError("nimgen's package metadata names no Source repository (an install older than this "
                        "version? reinstall nimgen)", hint=hint)
    return f"nimgen[validate] @ git+{source}@v{meta['Version']}"


def _uses(action: str) -> str:
    commit, _tag = ACTIONS[action]
    return f"{action}@{commit}"


def _line_comments(text: str) -> str:
    """The dumped workflow with its comments: the release tag beside each pinned action, the reason beside the
    job's write permission (the YAML dumper writes data, not comments)."""
    comments = {f"uses: {_uses(action)}": tag for action, (_commit, tag) in ACTIONS.items()}
    comments["pull-requests: write"] = PULL_REQUESTS_WRITE
    unused = set(comments)
    lines = []
    for line in text.splitlines():
        content = line.strip().removeprefix("- ")
        if content in comments:
            line += f" # {comments[content]}"
            unused.discard(content)
        lines.append(line)
    assert not unused, f"no line of the workflow is {sorted(unused)}"
    return "\n".join(lines) + "\n"


def workflow(nimgen_spec: str, default_branch: str) -> dict[str, Any]:
    """GitHub Actions: check and validate every push and pull request; comment the diff on pull requests.

    It passes zizmor (GitHub Actions' security linter): actions pinned to commits, no Git credentials left in
    the checkout, and values from the event reach the scripts through the environment, never spliced in.
    """
    diff_script = (
        "set -euo pipefail\n"
        ": > diff.md\n"
        "envs=$(ls environments/*.yaml | grep -v '/_')\n"
        "# All environments share one comment, and a comment holds at most 65,536 characters.\n"
        "limit=$(( 65000 / $(echo \"$envs\" | wc -l) ))\n"
        "for env in $envs; do\n"
        '  nimgen diff "$env" --base "origin/$BASE_REF" --output markdown --limit "$limit" >> diff.md\n'
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
                "name": "nimgen",
                "runs-on": "ubuntu-latest",
                "permissions": {"contents": "read", "pull-requests": "write"},
                "steps": [
                    # Full history: nimgen diff reads the base side through git. No step pushes, so the token
                    # is not left in .git/config.
                    {"uses": _uses("actions/checkout"), "with": {"fetch-depth": 0, "persist-credentials": False}},
                    {"uses": _uses("actions/setup-python"), "with": {"python-version": "3.12"}},
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
        "id": "nimgen-check", "name": "nimgen check (rendered files are current and staged)",
        "entry": "nimgen check --index",
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
                   nimgen_spec: str | None = None, default_branch: str = "main") -> dict[PurePosixPath, str]:
    """The files `nimgen init` creates before rendering; CI installs `nimgen_spec` (default_nimgen_spec() when
    None)."""
    _check_settings(repo_url, cluster_prefix, region, kubernetes_version)
    if nimgen_spec is None:
        nimgen_spec = default_nimgen_spec()
    context = {"repo_url": repo_url, "cluster_prefix": cluster_prefix, "region": region,
               "kubernetes_version": kubernetes_version}
    files = {PurePosixPath("environments") / f"{name}.yaml": render_text(f"init/{name}.yaml.j2", **context)
             for name in ("_defaults", *ENVIRONMENTS)}
    files[PurePosixPath("README.md")] = render_text("init/README.md.j2", **context)
    files[WORKFLOW] = HEADER + _line_comments(dump(workflow(nimgen_spec, default_branch)))
    files[PRE_COMMIT] = HEADER + dump(pre_commit_config())
    return files


def init_repository(target: Path, *, nimgen_spec: str | None = None, **settings: str) -> list[PurePosixPath]:
    """Create and render the repository beside `target`, then move it in: a failure leaves `target` as it was.

    Returns every file created, relative to `target`.
    """
    target.mkdir(parents=True, exist_ok=True)
    files = scaffold_files(nimgen_spec=nimgen_spec, **settings)
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
