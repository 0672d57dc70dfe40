"""One module per command: render, check, diff (and its reports), plan, bench, smoke, import-terraform, init.

`nimgen validate` is the `nimgen.validation` package; `nimgen.cli` only parses arguments and calls these."""
