"""One module per command: render, check, diff (and its reports), plan, validate, bench, smoke, import-terraform, init.

`validate` runs the `nimgen.validation` package; `nimgen.cli` only parses arguments and calls these."""
