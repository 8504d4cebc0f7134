"""``recsys-ranker``: the ranker service's process."""

from __future__ import annotations


def main() -> None:
    from recsys.serving.server import run
    from recsys_ranker.service import RankerApp

    run("ranker", RankerApp)


if __name__ == "__main__":
    main()
