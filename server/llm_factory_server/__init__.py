"""llm-factory gateway server (work in progress)."""
