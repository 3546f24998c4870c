"""Loader process: Redis stream → one idempotent MERGE per batch into Snowflake → XACK (or the DLQ).

Reads through the shared ``webhook_app.consumer.StreamConsumer``. Nothing here serves HTTP, verifies
webhooks or calls the Gong REST API, or imports the ingest or enrich packages.
"""
