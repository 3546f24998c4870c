"""Kopf operator for GongWebhook resources (import name: gong_operator)."""
