"""What the gRPC serving services (featurestore, candidates, ranker) share: the server's
lifecycle (health, reflection, metrics, graceful stop), the per-call wrapper (deadlines, errors,
latency), hot reload of registry versions, and FeatureSet conversions. docs/serving.md."""
