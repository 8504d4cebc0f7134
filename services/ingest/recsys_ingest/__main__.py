"""``python -m recsys_ingest``: the same as the ``recsys-ingest`` command."""

from recsys_ingest.main import main

main()
