"""The ranker service (gRPC, port 50053): the multi-task model scores a member's candidates in one
batch and combines P(play), P(complete) and P(rate_high) with the call's objective weights.
docs/ranker.md."""
