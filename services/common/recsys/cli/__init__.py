"""The ``recsys`` command line: one entry point, one sub-command group per area."""
