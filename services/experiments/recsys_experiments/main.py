"""``recsys-experiments``: the experiments service's process."""

from __future__ import annotations


def main() -> None:
    from recsys.serving.server import run
    from recsys_experiments.service import ExperimentsApp

    run("experiments", ExperimentsApp)


if __name__ == "__main__":
    main()
