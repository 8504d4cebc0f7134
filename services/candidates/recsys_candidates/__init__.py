"""The candidates service (gRPC, port 50052): the user tower and an exact inner-product search
over the title vectors, filtered by what the member may and has not yet watched.
docs/candidates.md."""
