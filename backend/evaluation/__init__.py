"""Evaluation: datasets, offline metrics, batched runs over one or more models, persisted results, a CLI.

Importing this package (or `types`, `data`, `store`) is light: torch, transformers and `evaluate` (which pulls
both in) are imported only when a run scores or touches a model, so a UI can import it freely.
"""
