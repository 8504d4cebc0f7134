"""``recsys-candidates``: the candidates service's process."""

from __future__ import annotations


def main() -> None:
    from recsys.serving.server import run
    from recsys_candidates.service import CandidatesApp

    run("candidates", CandidatesApp)


if __name__ == "__main__":
    main()
