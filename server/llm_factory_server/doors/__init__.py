"""The gateway's HTTP doors beyond chat completions, each a thin adapter from HTTP to a dialect
codec of the core and the router: ``responses`` (OpenAI's Responses API), ``embeddings``."""

from .embeddings import create_embeddings_router
from .responses import create_responses_router

__all__ = ["create_embeddings_router", "create_responses_router"]
