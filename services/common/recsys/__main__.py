"""`python -m recsys` is the `recsys` command."""

from recsys.cli.main import main

main()
