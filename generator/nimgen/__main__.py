"""`python -m nimgen`: the same program as the `nimgen` command (help, and completion's _NIMGEN_COMPLETE)."""

from nimgen.cli import main

main(prog_name="nimgen")
