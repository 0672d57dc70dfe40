"""The commands that talk to running models: smoke (through the OpenAI API) and bench (GenAI-Perf Jobs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nimgen.cli.boundary import EXIT_USER_ERROR, error_boundary, global_options
from nimgen.cli.gitops import env_file_argument


@click.command()
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
@click.option("--api-key-env", default=None, metavar="NAME",
              help="Environment variable holding the API key sent as 'Authorization: Bearer KEY' (the gateway's "
                   "client key); it must be set. Default: OPENAI_API_KEY when set, else no key.")
@global_options
def smoke(url: str, model_id: str, prompts_file: Path | None, concurrency: int, max_tokens: int,
          results_file: Path | None, stream: bool, api: str, timeout: float, api_key_env: str | None) -> None:
    """Send prompts to a running NIM through its OpenAI API and report latency, throughput and failures.

    Checks GET /v1/models serves --model first, then sends every prompt (at most --concurrency at once),
    printing each request's latency as it finishes, then accumulated and wall time, completion tokens,
    tokens/s (over wall time) and, with --stream, time to first token p50/p95. No retries. Exit 1 when
    the model is not served or any request fails. Needs the openai package: pip install 'nimgen[smoke]'.
    """
    from nimgen.commands.smoke import SmokeOptions, load_prompts, run_smoke

    with error_boundary():
        options = SmokeOptions(url=url, model=model_id, prompts=load_prompts(prompts_file), concurrency=concurrency,
                               max_tokens=max_tokens, stream=stream, api="chat" if api == "chat" else "completions",
                               timeout_s=timeout, api_key_env=api_key_env or "OPENAI_API_KEY",
                               api_key_required=api_key_env is not None)
        report = run_smoke(options, echo=click.echo, results_file=results_file)
    if not report.ok:
        sys.exit(EXIT_USER_ERROR)


@click.command()
@env_file_argument()
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
@click.option("--gateway", "through_gateway", is_flag=True,
              help="Call the models through the environment's gateway (its in-cluster endpoint, under their public "
                   "names), with its authentication and token budgets, instead of their Services.")
@click.option("--client", default="", metavar="NAME",
              help="With --gateway: the API-key client (gateway.auth.apiKeys.clients) the Jobs call as; its key "
                   "comes from the gateway's Secret, and the benchmark's tokens count against its budget.")
@click.option("--write", is_flag=True,
              help="Write argocd/<env>/bench/ (AppProject, an Application that is never auto-synced, one Job "
                   "per model) instead of printing the Jobs.")
@global_options
def bench(env_file: Path, models: tuple[str, ...], concurrency: int, input_tokens: int,
          output_tokens: int, num_prompts: int, tokenizer: str, through_gateway: bool, client: str,
          write: bool) -> None:
    """Render a Kubernetes Job per model of ENV_FILE that benchmarks it with NVIDIA GenAI-Perf.

    Each Job runs GenAI-Perf (pinned Triton SDK image) against the model's in-cluster Service (or, with
    --gateway, the gateway) on /v1/completions with the reference deployment's load unless told otherwise,
    needs no GPU, runs on ordinary nodes and prints GenAI-Perf's summary export as its log. Printed to stdout by default
    (kubectl apply -f -); with --write, kept in Git for Argo CD to run on each manual sync.
    """
    from nimgen.commands.bench import BenchParams, run_bench
    from nimgen.repository import require_environment

    with error_boundary():
        params = BenchParams(concurrency=concurrency, input_tokens=input_tokens, output_tokens=output_tokens,
                             num_prompts=num_prompts, tokenizer=tokenizer)
        result = run_bench(require_environment(env_file), models=models, params=params, write=write,
                           through_gateway=through_gateway, client=client)
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


COMMANDS = (smoke, bench)
