"""`python -m nimgen`."""

from nimgen.cli import main

main()
