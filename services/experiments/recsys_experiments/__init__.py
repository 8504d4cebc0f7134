"""Experiments: the configuration of layered A/B tests and the deterministic assignment of
members to their variants (docs/experiments.md). The gRPC service (port 50054) is planned."""
