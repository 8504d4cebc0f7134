"""``recsys-featurestore``: the featurestore service's process."""

from __future__ import annotations


def main() -> None:
    from recsys.serving.server import run
    from recsys_featurestore.service import FeatureStoreApp

    run("featurestore", FeatureStoreApp)


if __name__ == "__main__":
    main()
