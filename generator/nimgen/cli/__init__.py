"""Command line: parses options and calls the library; `boundary` is the one place errors become exit codes."""

from __future__ import annotations

import click

from nimgen.cli import completion, gitops, serving
from nimgen.cli.boundary import EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, EXIT_USER_ERROR, global_options

__all__ = ["EXIT_INTERNAL_ERROR", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", "-V", package_name="nimgen", prog_name="nimgen")
@global_options
def main() -> None:
    """Render Helm charts and Argo CD Applications for NVIDIA NIM LLMs on EKS from environment YAML.

    Each environment file (environments/<name>.yaml, layered over environments/_defaults.yaml)
    lists the models one cluster serves. nimgen renders charts/ and argocd/<name>/ for Argo CD to
    auto-sync, and checks the input first: a broken file changes nothing on disk. Commands find the
    repository from any folder inside it.
    """


for _command in (*gitops.COMMANDS, *serving.COMMANDS, completion.completion):
    main.add_command(_command)
