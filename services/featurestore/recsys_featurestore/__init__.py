"""The feature store service (gRPC, port 50051): members' real-time and batch features with the
age and tier of every value, and the features of many titles in one call. docs/featurestore.md."""
