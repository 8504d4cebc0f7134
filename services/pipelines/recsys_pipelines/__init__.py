"""Batch pipelines over the lake: silver, gold, daily features, training sets."""
