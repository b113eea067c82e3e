"""The floor everything stands on: plain types and typed errors, models.yaml, the live registry, streams."""
