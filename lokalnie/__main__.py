"""`python -m lokalnie`: the same program as the `lokalnie` command."""

from lokalnie.cli import main

main()
