"""``python -m recsys_api``: the same as the ``recsys-api`` command."""

from recsys_api.main import main

main()
