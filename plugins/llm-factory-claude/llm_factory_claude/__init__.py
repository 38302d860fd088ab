"""llm-factory provider (work in progress)."""
