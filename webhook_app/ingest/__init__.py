"""Ingest process: Gong's webhook POST → verified, de-duplicated entry in the Redis stream.

``accept`` is the domain step (no HTTP types); ``api`` is the HTTP adapter around it. Nothing here
talks to Snowflake or the Gong REST API, or imports the loader or enrich packages.
"""
