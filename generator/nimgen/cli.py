"""Command line: parses options, calls the library, and is the one place that turns errors into exit codes."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nimgen.errors import NimgenError, UserError

if TYPE_CHECKING:
    from nimgen.commands.render import RenderResult

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130


@contextmanager
def _error_boundary(debug: bool) -> Iterator[None]:
    """User errors: message, exit 1. Bugs: one line (traceback with --debug), exit 3."""
    try:
        yield
    except UserError as exc:
        click.secho(f"error: {exc.render()}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    except NimgenError as exc:
        click.secho(f"internal error: {exc}", fg="red", err=True)
        sys.exit(EXIT_INTERNAL_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the single boundary for unexpected failures
        if debug:
            traceback.print_exc()
        click.secho(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in nimgen; run again with --debug for a traceback and report it",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_INTERNAL_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", "-V", package_name="nimgen", prog_name="nimgen")
@click.option("--debug", is_flag=True, help="Show a traceback for unexpected errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Render Helm charts and Argo CD Applications for NVIDIA NIM LLMs on EKS from environment YAML.

    Each environment file (environments/<name>.yaml, layered over environments/_defaults.yaml)
    lists the models one cluster serves. nimgen renders charts/ and argocd/<name>/ for Argo CD to
    auto-sync, and checks the input first: a broken file changes nothing on disk.
    """
    ctx.obj = debug


@main.command()
@click.argument(
    "env_files", metavar="ENV_FILE...", nargs=-1, required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Repository root to write into. Default: the folder that holds each file's environments/ folder.",
)
@click.option("--dry-run", is_flag=True, help="Show what would change without writing anything.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another render of the same repository to finish.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary line of each environment.")
@click.pass_obj
def render(debug: bool, env_files: tuple[Path, ...], output: Path | None, dry_run: bool, lock_timeout: float,
           quiet: bool) -> None:
    """Validate ENV_FILE(s) and write charts/ and argocd/<env>/ for each.

    Every problem in every file is reported at once (FILE:LINE:COL: $.path: message) and
    nothing is written unless all files are valid. Rendering the same input twice changes
    nothing; files nimgen did not generate are never touched.
    """
    # Each command imports what it needs: start-up time counts in pre-commit hooks and CI.
    from nimgen.commands.render import render_files

    with _error_boundary(debug):
        results = render_files(list(env_files), output=output, dry_run=dry_run, lock_timeout=lock_timeout)
        _report(results, quiet=quiet, dry_run=dry_run, echo=lambda text: click.echo(text, err=True))


@main.command()
@click.argument("env_files", metavar="[ENV_FILE]...", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def check(debug: bool, env_files: tuple[Path, ...]) -> None:
    """Check that the committed charts/ and argocd/<env>/ are what rendering gives now (no ENV_FILE: all).

    Renders in memory and writes nothing. Lists every file that is missing, stale, hand-edited,
    extra or in nimgen's way, with the command that fixes it; exit 1 when any is. Fast enough for a
    pre-commit hook.
    """
    from nimgen.commands.check import as_text, check_files
    from nimgen.repository import environment_files

    with _error_boundary(debug):
        results = check_files(list(env_files) or environment_files(Path.cwd()))
        click.echo(as_text(results), nl=False)
    if any(result.drifts for result in results):
        sys.exit(EXIT_USER_ERROR)


@main.command()
@click.argument("env_file", metavar="ENV_FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Table for people or JSON for machines.")
@click.pass_obj
def plan(debug: bool, env_file: Path, output_format: str) -> None:
    """Show where each model of ENV_FILE lands and the GPUs it takes at min and max replicas.

    Per model: pool, the instance type it most likely lands on, GPUs per replica, replica range,
    GPU memory needed vs available; per pool: GPUs at min-max vs the pool's gpuLimit.
    """
    from nimgen.commands.plan import as_json, as_text
    from nimgen.commands.render import plan_environment

    with _error_boundary(debug):
        result = plan_environment(env_file)
        click.echo(as_json(result) if output_format == "json" else as_text(result), nl=False)


@main.command()
@click.argument("env_files", metavar="[ENV_FILE]...", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--schema-location", "schema_locations", multiple=True, metavar="LOCATION",
              help="CRD schemas: a folder in {group}/{kind}_{version}.json layout, or a path/URL template in "
                   "kubeconform syntax ({{.Group}}, {{.ResourceKind}}, {{.ResourceAPIVersion}}). Repeatable. "
                   "Default: $NIMGEN_SCHEMA_LOCATION, else the public CRD catalog (fetched once, cached).")
@click.option("--chart-cache", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of `helm pull` archives (<chart>-<version>.tgz) to render external charts from. "
                   "Default: the repository's charts/upstream/, when it exists.")
@click.option("--ignore-missing-schemas", is_flag=True, help="A kind without a schema is a notice, not an error.")
@click.option("--output", "output_format", type=click.Choice(["text", "json", "junit"]), default="text",
              show_default=True, help="Report for people, tools or CI.")
@click.pass_obj
def validate(debug: bool, env_files: tuple[Path, ...], schema_locations: tuple[str, ...], chart_cache: Path | None,
             ignore_missing_schemas: bool, output_format: str) -> None:
    """Check what Argo CD will apply from the committed charts/ and argocd/<env>/ (no ENV_FILE: every environment).

    Renders every Application's chart as Argo CD does, validates each manifest against Kubernetes'
    schemas (strict) and the CRD schemas (with their CEL rules where they can be evaluated), then
    checks the links between objects and serving-safety policy. Exit 1 when anything is an error.
    """
    from nimgen.commands.validate import validate_files
    with _error_boundary(debug):
        text, ok = validate_files(list(env_files), list(schema_locations), chart_cache, ignore_missing_schemas,
                                  output_format)
        click.echo(text, nl=False)
    if not ok:
        sys.exit(EXIT_USER_ERROR)


@main.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--repo-url", metavar="URL",
              help="Git URL Argo CD clones the new repository from. Default: DIR's git remote 'origin'.")
@click.option("--cluster-prefix", default="nim", show_default=True,
              help="EKS cluster names are <prefix>-dev and <prefix>-prod.")
@click.option("--region", default="us-west-2", show_default=True, help="AWS region of the clusters.")
@click.option("--kubernetes-version", default="1.33", show_default=True, help="EKS Kubernetes version.")
@click.option("--nimgen-spec", metavar="REQUIREMENT", default=None,
              help="What CI installs with pip. Default: nimgen[validate]==<this version>.")
@click.pass_obj
def init(debug: bool, directory: Path, repo_url: str | None, cluster_prefix: str, region: str,
         kubernetes_version: str, nimgen_spec: str | None) -> None:
    """Start a GitOps repository in DIR: environments, rendered charts/ and argocd/, README, CI, pre-commit.

    The result passes `nimgen check` and `nimgen validate` at once. Nothing is written unless all of
    it can be; existing files are never replaced.
    """
    import nimgen
    from nimgen.commands.init import init_repository

    with _error_boundary(debug):
        url = repo_url or _origin_url(directory)
        created = init_repository(directory, repo_url=url, cluster_prefix=cluster_prefix, region=region,
                                  kubernetes_version=kubernetes_version,
                                  nimgen_spec=nimgen_spec or f"nimgen[validate]=={nimgen.__version__}")
        click.echo(f"created {len(created)} files in {directory}: environments/ (dev, prod), charts/, argocd/, "
                   "README.md, .github/workflows/nimgen.yml, .pre-commit-config.yaml")
        click.echo("next: fill in the cluster facts in environments/*.yaml, run 'nimgen render', commit, push")


def _origin_url(directory: Path) -> str:
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(directory), "remote", "get-url", "origin"], capture_output=True,
                              text=True, check=False)
    except OSError:
        done = None
    if done is None or done.returncode != 0 or not done.stdout.strip():
        raise UserError("cannot tell the repository's URL", hint="pass --repo-url (the URL Argo CD clones it from)")
    return done.stdout.strip()


@main.command()
@click.argument("env_file", metavar="ENV_FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--base", "base_ref", metavar="REF", default=None,
              help="Git ref to compare with. Default: the merge base of HEAD with the default branch "
                   "(origin/HEAD's target, else main, else master).")
@click.option("--format", "output_format", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="Report for a terminal, a pull request comment, or machines.")
@click.option("--limit", type=click.IntRange(min=4096), default=65_536, show_default=True, metavar="CHARS",
              help="Markdown: stay under this many characters (GitHub's comment limit; lower it when one "
                   "comment carries several environments).")
@click.pass_obj
def diff(debug: bool, env_file: Path, base_ref: str | None, output_format: str, limit: int) -> None:
    """Show what the change to ENV_FILE since REF does to the cluster: models, GPUs, $/h, every object.

    Renders ENV_FILE as of REF (read through git; the work tree is never touched) and as in the work
    tree, expands both into the Kubernetes objects Argo CD applies, and compares them field by field.
    Exit 0 whether or not anything changes.
    """
    from nimgen.commands import diffreport
    from nimgen.commands.diff import diff as compute

    with _error_boundary(debug):
        result = compute(env_file, base_ref)
        if output_format == "markdown":
            click.echo(diffreport.as_markdown(result, limit=limit), nl=False)
        else:
            click.echo((diffreport.as_json if output_format == "json" else diffreport.as_text)(result), nl=False)


@main.command()
@click.option("--url", required=True, metavar="URL",
              help="The NIM's address, e.g. http://localhost:8000 (a port-forward to the model's Service); "
                   "/v1 is added unless URL ends with it.")
@click.option("--model", "model_id", required=True, metavar="ID",
              help="OpenAI model id the NIM serves (its servedModelName, e.g. meta/llama3-8b-instruct).")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="One prompt per line (blank lines skipped). Default: 20 built-in prompts about LLM serving.")
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True, metavar="N",
              help="Requests in flight at once.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True, metavar="N",
              help="max_tokens of each request.")
@click.option("--results", "results_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every request's outcome and the summary as JSON.")
@click.option("--stream/--no-stream", default=False, show_default=True,
              help="Stream tokens; adds time to first token and inter-token latency (between content chunks).")
@click.option("--api", type=click.Choice(["chat", "completions"]), default="chat", show_default=True,
              help="/v1/chat/completions or /v1/completions.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
              metavar="SECONDS", help="Bounds each whole request, streamed answer included.")
@click.pass_obj
def smoke(debug: bool, url: str, model_id: str, prompts_file: Path | None, concurrency: int, max_tokens: int,
          results_file: Path | None, stream: bool, api: str, timeout: float) -> None:
    """Send prompts to a running NIM through its OpenAI API and report latency, throughput and failures.

    Checks GET /v1/models serves --model first, then sends every prompt (at most --concurrency at once),
    printing each request's latency as it finishes, then accumulated and wall time, completion tokens,
    tokens/s (over wall time) and, with --stream, time to first token p50/p95. No retries. Exit 1 when
    the model is not served or any request fails. Needs the openai package: pip install 'nimgen[smoke]'.
    """
    from nimgen.commands.smoke import SmokeOptions, load_prompts, run_smoke

    with _error_boundary(debug):
        options = SmokeOptions(url=url, model=model_id, prompts=load_prompts(prompts_file), concurrency=concurrency,
                               max_tokens=max_tokens, stream=stream, api="chat" if api == "chat" else "completions",
                               timeout_s=timeout)
        report = run_smoke(options, echo=click.echo, results_file=results_file)
    if not report.ok:
        sys.exit(EXIT_USER_ERROR)


@main.command()
@click.argument("env_file", metavar="ENV_FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "models", multiple=True, metavar="NAME",
              help="Benchmark only this model (repeatable). Default: every model of ENV_FILE.")
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True, metavar="N",
              help="Requests in flight at once.")
@click.option("--input-tokens", type=click.IntRange(min=1), default=200, show_default=True, metavar="N",
              help="Mean prompt length in tokens (synthetic prompts).")
@click.option("--output-tokens", type=click.IntRange(min=1), default=100, show_default=True, metavar="N",
              help="Tokens to generate per request (max_tokens).")
@click.option("--num-prompts", type=click.IntRange(min=1), default=100, show_default=True, metavar="N",
              help="Distinct synthetic prompts.")
@click.option("--tokenizer", default="hf-internal-testing/llama-tokenizer", show_default=True, metavar="ID",
              help="Hugging Face tokenizer GenAI-Perf counts tokens with (downloaded by the Job).")
@click.option("--write", is_flag=True,
              help="Write argocd/<env>/bench/ (AppProject, an Application that is never auto-synced, one Job "
                   "per model) instead of printing the Jobs.")
@click.pass_obj
def bench(debug: bool, env_file: Path, models: tuple[str, ...], concurrency: int, input_tokens: int,
          output_tokens: int, num_prompts: int, tokenizer: str, write: bool) -> None:
    """Render a Kubernetes Job per model of ENV_FILE that benchmarks it with NVIDIA GenAI-Perf.

    Each Job runs GenAI-Perf (pinned Triton SDK image) against the model's in-cluster Service on
    /v1/completions with the reference deployment's load unless told otherwise, needs no GPU, runs on
    ordinary nodes and prints GenAI-Perf's summary export as its log. Printed to stdout by default
    (kubectl apply -f -); with --write, kept in Git for Argo CD to run on each manual sync.
    """
    from nimgen.commands.bench import BenchParams, run_bench

    with _error_boundary(debug):
        params = BenchParams(concurrency=concurrency, input_tokens=input_tokens, output_tokens=output_tokens,
                             num_prompts=num_prompts, tokenizer=tokenizer)
        result = run_bench(env_file, models=models, params=params, write=write)
        for warning in result.env.warnings:
            click.echo(warning.render(), err=True)
        if not write:
            click.echo(result.text, nl=False)
            return
        for change in result.changes:
            if change.action != "identical":
                click.echo(f"{change.action:>9}  {change.path}", err=True)
        name = result.env.name
        benchmarked = ", ".join(model.name for model in result.models)
        click.echo(f"{name}: benchmark of {benchmarked} in argocd/{name}/bench/", err=True)
        click.echo(f"next: commit and push; 'kubectl apply -n {result.env.gitops.namespace} -f "
                   f"argocd/{name}/bench/' once; then each 'argocd app sync {name}-bench' runs it", err=True)


@main.command("import-terraform")
@click.argument("outputs_file", metavar="OUTPUTS_JSON", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("env_file", metavar="ENV_FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would change without writing.")
@click.pass_obj
def import_terraform(debug: bool, outputs_file: Path, env_file: Path, dry_run: bool) -> None:
    """Fill ENV_FILE's cluster facts from `terraform output -json` (OUTPUTS_JSON), keeping its comments.

    Sets the cluster name, region, Kubernetes version and Karpenter names; the EFS file system id and
    the NGC Secrets Manager names only where the environment uses a shared cache or ngc.externalSecret.
    Shows what changed; refuses a result that would not render.
    """
    from nimgen.commands.import_terraform import import_terraform as run_import

    with _error_boundary(debug):
        changes, skipped = run_import(outputs_file, env_file, dry_run=dry_run)
        verb = "would change" if dry_run else "updated"
        click.echo(f"{env_file}: {verb} {len(changes)} key{'s' if len(changes) != 1 else ''}" if changes
                   else f"{env_file}: already up to date")
        for change in changes:
            click.echo(change.render())
        for item in skipped:
            click.echo(f"  skipped {item.output}: {item.reason}")
        if changes and not dry_run:
            click.echo(f"next: nimgen render {env_file}")


def _report(results: list[RenderResult], *, quiet: bool, dry_run: bool, echo: Callable[[str], None]) -> None:
    for result in results:
        for warning in result.warnings:
            echo(warning.render())
        if not quiet:
            for change in result.changes:
                if change.action != "identical":
                    echo(f"{change.action:>9}  {change.path}")
        counts = {action: sum(1 for c in result.changes if c.action == action) for action in
                  ("create", "update", "delete", "identical")}
        verb = "would change" if dry_run else "rendered"
        echo(
            f"{result.env_name}: {verb} {result.root}: {counts['create']} created, {counts['update']} updated, "
            f"{counts['delete']} deleted, {counts['identical']} unchanged"
        )


if __name__ == "__main__":  # pragma: no cover
    main()
