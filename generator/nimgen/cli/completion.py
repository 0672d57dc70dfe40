"""`nimgen completion SHELL`: the shell's completion script, from click's own completion support."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from nimgen.cli.boundary import global_options

SHELLS = ("bash", "zsh", "fish")
# The variable click's completion protocol reads; it follows from the program name `nimgen`.
COMPLETE_VAR = "_NIMGEN_COMPLETE"


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@global_options
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, and ENV_FILE from the repository.

    \b
    bash: eval "$(nimgen completion bash)"            (in ~/.bashrc)
    zsh:  eval "$(nimgen completion zsh)"             (in ~/.zshrc)
    fish: nimgen completion fish > ~/.config/fish/completions/nimgen.fish
    """
    ctx = click.get_current_context()
    shell_class = get_completion_class(shell)
    assert shell_class is not None  # every name in SHELLS is built into click
    script = shell_class(ctx.find_root().command, {}, "nimgen", COMPLETE_VAR).source()
    click.echo(script)
