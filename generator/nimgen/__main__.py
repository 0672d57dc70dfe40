"""`python -m nimgen`: the same program as the `nimgen` command (help, and completion's _NIMGEN_COMPLETE)."""

from nimgen.cli import main

# Guarded: validate's worker processes import the main module again, and must not run the command in turn.
if __name__ == "__main__":
    main(prog_name="nimgen")
