"""Enrich process: call ids of loaded events → Gong REST API (within its limits) → transcript tables.

Reads through the shared ``webhook_app.consumer.StreamConsumer``. Nothing here serves HTTP, verifies
webhooks or writes the events table, or imports the ingest or loader packages.
"""
