"""Ingest service: validated member events from clients into Kafka."""
