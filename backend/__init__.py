"""LLM Workbench backend: registry, engines and services. Never imports gradio (checked by a test)."""
