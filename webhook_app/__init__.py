"""FastAPI ingest service and Snowflake loader for Gong webhooks."""
