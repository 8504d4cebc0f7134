"""Ingest service: validated member events from clients into Kafka.

``POST /v1/events`` takes a JSON batch of events (schema v1), validates each one and produces the
valid ones to Kafka keyed by user_id; see docs/ingest.md for the contract.
"""
