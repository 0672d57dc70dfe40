"""The commands that read and write the GitOps repository: render, check, validate, plan, diff, init, import."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from nimgen.cli.boundary import (
    EXIT_USER_ERROR,
    colour_on_stdout,
    environments,
    error_boundary,
    format_option,
    global_options,
    note,
)

if TYPE_CHECKING:
    from nimgen.commands.render import RenderResult


def complete_environments(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of ENV_FILE: the environment files of the repository around the working folder."""
    from nimgen.errors import UserError
    from nimgen.repository import display_path, environment_files, find_root

    try:
        root = find_root(Path.cwd())
        found = [display_path(path, Path.cwd()) for path in environment_files(root)]
    except UserError:
        return [CompletionItem(incomplete, type="file")]
    return [CompletionItem(path) for path in found if path.startswith(incomplete)] or \
        [CompletionItem(incomplete, type="file")]


def env_files_argument(required: bool = False) -> Callable[[Any], Any]:
    return click.argument("env_files", metavar="[ENV_FILE]...", nargs=-1, required=required,
                          type=click.Path(dir_okay=False, path_type=Path), shell_complete=complete_environments)


def env_file_argument() -> Callable[[Any], Any]:
    return click.argument("env_file", metavar="ENV_FILE", type=click.Path(dir_okay=False, path_type=Path),
                          shell_complete=complete_environments)


@click.command()
@env_files_argument()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Repository root to write into. Default: the folder that holds each file's environments/ folder.")
@click.option("--dry-run", is_flag=True, help="Show what would change without writing anything.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another render of the same repository to finish.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary line of each environment.")
@format_option("text", "json", help_text="Changed files for people (on stderr), or JSON for tools (on stdout).")
@global_options
def render(env_files: tuple[Path, ...], root: Path | None, dry_run: bool, lock_timeout: float, quiet: bool,
           output_format: str) -> None:
    """Validate ENV_FILE(s) and write charts/ and argocd/<env>/ for each (no ENV_FILE: every environment).

    Every problem in every file is reported at once (FILE:LINE:COL: $.path: message) and
    nothing is written unless all files are valid. Rendering the same input twice changes
    nothing; files nimgen did not generate are never touched.
    """
    # Each command imports what it needs: start-up time counts in pre-commit hooks and CI.
    from nimgen.commands.render import render_files

    with error_boundary():
        results = render_files(environments(env_files), output=root, dry_run=dry_run, lock_timeout=lock_timeout)
        if output_format == "json":
            from nimgen.jsonreport import dumps

            for result in results:
                for warning in result.warnings:
                    note(warning.render())
            click.echo(dumps({"dry_run": dry_run, "environments": [_render_json(r) for r in results]}), nl=False)
        else:
            _report(results, quiet=quiet, dry_run=dry_run, echo=note)


@click.command()
@env_files_argument()
@click.option("--index", "staged", is_flag=True,
              help="Also check what is being committed: every rendered file staged as it is on disk (for "
                   "pre-commit and git hooks).")
@click.option("--no-cache", "no_cache", is_flag=True,
              help="Render every environment, even one whose inputs an earlier render or check has seen "
                   "(as NIMGEN_NO_CACHE=1 does).")
@format_option("text", "json", help_text="Drifted files for people, or JSON for tools.")
@global_options
def check(env_files: tuple[Path, ...], staged: bool, no_cache: bool, output_format: str) -> None:
    """Check that the committed charts/ and argocd/<env>/ are what rendering gives now (no ENV_FILE: all).

    Renders in memory and writes nothing. Lists every file that is missing, stale, hand-edited,
    extra or in nimgen's way, with the command that fixes it; with --index, also every rendered file
    that is untracked or not staged, with the `git add` that fixes it. Exit 1 when any is. Fast enough
    for a pre-commit hook: an environment whose inputs (its file, its layer, this nimgen) an earlier render
    or check has seen is not rendered again; the files on disk are always read.
    """
    from nimgen.commands.check import as_json, as_text, check_files

    with error_boundary():
        results = check_files(environments(env_files), staged=staged, reuse=not no_cache)
        click.echo(as_json(results) if output_format == "json" else as_text(results), nl=False)
    if not all(result.ok for result in results):
        sys.exit(EXIT_USER_ERROR)


@click.command()
@env_file_argument()
@format_option("text", "json", help_text="Table for people or JSON for machines.")
@global_options
def plan(env_file: Path, output_format: str) -> None:
    """Show where each model of ENV_FILE lands and the GPUs it takes at min and max replicas.

    Per model: pool, the instance type it most likely lands on, GPUs per replica, replica range,
    GPU memory needed vs available; per pool: GPUs at min-max vs the pool's gpuLimit.
    """
    from nimgen.commands.plan import as_json, as_text
    from nimgen.commands.render import plan_environment
    from nimgen.repository import require_environment

    with error_boundary():
        result = plan_environment(require_environment(env_file))
        click.echo(as_json(result) if output_format == "json" else as_text(result), nl=False)


@click.command()
@env_files_argument()
@click.option("--schema-location", "schema_locations", multiple=True, metavar="LOCATION",
              help="CRD schemas: a folder in {group}/{kind}_{version}.json layout (kubeconform's; e.g. a checkout of "
                   "github.com/datreeio/CRDs-catalog), or a path/URL template in kubeconform syntax ({{.Group}}, "
                   "{{.ResourceKind}}, {{.ResourceAPIVersion}}). Repeatable. Default: $NIMGEN_SCHEMA_LOCATION "
                   "(comma-separated), else the public CRD catalog (fetched once, cached). Offline or air-gapped: "
                   "point either at such a folder.")
@click.option("--chart-cache", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of `helm pull` archives (<chart>-<version>.tgz) to render external charts from. "
                   "Default: the repository's charts/upstream/, when it exists.")
@click.option("--ignore-missing-schemas", is_flag=True, help="A kind without a schema is a notice, not an error.")
@format_option("text", "json", "junit", help_text="Report for people, tools or CI.")
@global_options
def validate(env_files: tuple[Path, ...], schema_locations: tuple[str, ...], chart_cache: Path | None,
             ignore_missing_schemas: bool, output_format: str) -> None:
    """Check what Argo CD will apply from the committed charts/ and argocd/<env>/ (no ENV_FILE: every environment).

    Renders every Application's chart as Argo CD does, validates each manifest against Kubernetes'
    schemas (strict) and the CRD schemas (with their CEL rules where they can be evaluated), then
    checks the links between objects and serving-safety policy. Offline or air-gapped, give
    --schema-location DIR or set NIMGEN_SCHEMA_LOCATION=DIR; a location that cannot be reached is reported
    once, with the kinds it left unchecked. A tree that is not what rendering gives now is a warning (`nimgen
    check` fails on it). Exit 1 when anything is an error.
    """
    from nimgen.commands.validate import validate_files

    with error_boundary():
        text, ok = validate_files(environments(env_files), list(schema_locations), chart_cache,
                                  ignore_missing_schemas, output_format)
        click.echo(text, nl=False)
    if not ok:
        sys.exit(EXIT_USER_ERROR)


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--repo-url", metavar="URL",
              help="Git URL Argo CD clones the new repository from. Default: DIR's git remote 'origin'.")
@click.option("--cluster-prefix", default="nim", show_default=True,
              help="EKS cluster names are <prefix>-dev and <prefix>-prod.")
@click.option("--region", default="us-west-2", show_default=True, help="AWS region of the clusters.")
@click.option("--kubernetes-version", default="1.33", show_default=True, help="EKS Kubernetes version.")
@click.option("--nimgen-spec", metavar="REQUIREMENT", default=None,
              help="What CI installs with pip. Default: nimgen[validate] @ git+<nimgen's Source URL>@v<this version>.")
@global_options
def init(directory: Path, repo_url: str | None, cluster_prefix: str, region: str, kubernetes_version: str,
         nimgen_spec: str | None) -> None:
    """Start a GitOps repository in DIR: environments, rendered charts/ and argocd/, README, CI, pre-commit.

    The result passes `nimgen check` and `nimgen validate` at once. Nothing is written unless all of
    it can be; existing files are never replaced.
    """
    from nimgen.commands.init import init_repository

    with error_boundary():
        url = repo_url or _origin_url(directory)
        created = init_repository(directory, repo_url=url, cluster_prefix=cluster_prefix, region=region,
                                  kubernetes_version=kubernetes_version,
                                  nimgen_spec=nimgen_spec)
        click.echo(f"created {len(created)} files in {directory}: environments/ (dev, prod), charts/, argocd/, "
                   "README.md, .github/workflows/nimgen.yml, .pre-commit-config.yaml")
        click.echo("next: fill in the cluster facts in environments/*.yaml, run 'nimgen render', commit, push")


def _origin_url(directory: Path) -> str:
    import subprocess

    from nimgen.errors import UserError

    try:
        done = subprocess.run(["git", "-C", str(directory), "remote", "get-url", "origin"], capture_output=True,
                              text=True, check=False)
    except OSError:
        done = None
    if done is None or done.returncode != 0 or not done.stdout.strip():
        raise UserError("cannot tell the repository's URL", hint="pass --repo-url (the URL Argo CD clones it from)")
    return done.stdout.strip()


@click.command()
@env_file_argument()
@click.option("--base", "base_ref", metavar="REF", default=None,
              help="Git ref to compare with. Default: the merge base of HEAD with the default branch "
                   "(origin/HEAD's target, else main, else master).")
@format_option("text", "markdown", "json", help_text="Report for a terminal, a pull request comment, or machines.")
@click.option("--limit", type=click.IntRange(min=4096), default=65_536, show_default=True, metavar="CHARS",
              help="Markdown: stay under this many characters (GitHub's comment limit; lower it when one "
                   "comment carries several environments).")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when anything Argo CD applies changes and 0 when nothing does, like git diff --exit-code.")
@global_options
def diff(env_file: Path, base_ref: str | None, output_format: str, limit: int, exit_code: bool) -> None:
    """Show what the change to ENV_FILE since REF does to the cluster: models, GPUs, $/h, every object.

    Renders ENV_FILE as of REF (read through git; the work tree is never touched) and as in the work
    tree, expands both into the Kubernetes objects Argo CD applies, and compares them field by field.
    Exit 0 whether or not anything changes, unless --exit-code.
    """
    from nimgen.commands import diffreport
    from nimgen.commands.diff import diff as compute
    from nimgen.repository import require_environment

    with error_boundary():
        result = compute(require_environment(env_file), base_ref)
        if output_format == "markdown":
            click.echo(diffreport.as_markdown(result, limit=limit), nl=False)
        elif output_format == "json":
            click.echo(diffreport.as_json(result), nl=False)
        else:
            click.echo(diffreport.as_text(result, color=colour_on_stdout()), nl=False)
    if exit_code and result.changed:
        sys.exit(EXIT_USER_ERROR)


@click.command("import-terraform")
@click.argument("outputs_file", metavar="OUTPUTS_JSON", type=click.Path(dir_okay=False, allow_dash=True,
                                                                        path_type=Path))
@env_file_argument()
@click.option("--dry-run", is_flag=True, help="Show what would change without writing.")
@global_options
def import_terraform(outputs_file: Path, env_file: Path, dry_run: bool) -> None:
    """Fill ENV_FILE's cluster facts from `terraform output -json` (OUTPUTS_JSON; - reads stdin), keeping its comments.

    Sets the cluster name, region, Kubernetes version and Karpenter names; the EFS file system id and
    the NGC Secrets Manager names only where the environment uses a shared cache or ngc.externalSecret.
    Shows what changed; refuses a result that would not render.
    """
    from nimgen.commands import import_terraform as terraform_outputs
    from nimgen.repository import require_environment

    with error_boundary():
        outputs: Path | str = sys.stdin.read() if str(outputs_file) == "-" else outputs_file
        changes, skipped = terraform_outputs.import_terraform(outputs, require_environment(env_file), dry_run=dry_run)
        verb = "would change" if dry_run else "updated"
        click.echo(f"{env_file}: {verb} {len(changes)} key{'s' if len(changes) != 1 else ''}" if changes
                   else f"{env_file}: already up to date")
        for change in changes:
            click.echo(change.render())
        for item in skipped:
            click.echo(f"  skipped {item.output}: {item.reason}")
        if changes and not dry_run:
            click.echo(f"next: nimgen render {env_file}")


def _render_json(result: RenderResult) -> dict[str, Any]:
    return {"environment": result.env_name, "root": str(result.root),
            "counts": _counts(result),
            "changes": [{"action": change.action, "path": str(change.path)} for change in result.changes
                        if change.action != "identical"],
            "warnings": [warning.render() for warning in result.warnings]}


def _counts(result: RenderResult) -> dict[str, int]:
    return {action: sum(1 for change in result.changes if change.action == action)
            for action in ("create", "update", "delete", "identical")}


def _report(results: list[RenderResult], *, quiet: bool, dry_run: bool, echo: Callable[[str], None]) -> None:
    for result in results:
        for warning in result.warnings:
            echo(warning.render())
        if not quiet:
            for change in result.changes:
                if change.action != "identical":
                    echo(f"{change.action:>9}  {change.path}")
        counts = _counts(result)
        verb = "would change" if dry_run else "rendered"
        echo(
            f"{result.env_name}: {verb} {result.root}: {counts['create']} created, {counts['update']} updated, "
            f"{counts['delete']} deleted, {counts['identical']} unchanged"
        )


COMMANDS = (render, check, validate, plan, diff, init, import_terraform)
