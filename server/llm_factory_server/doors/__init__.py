"""The gateway's HTTP doors beyond chat completions, each a thin adapter from HTTP to a dialect
codec of the core and the router: ``responses`` (OpenAI's Responses API), ``messages``
(Anthropic's Messages API), ``embeddings``."""

from .embeddings import create_embeddings_router
from .messages import create_messages_router
from .responses import create_responses_router

__all__ = ["create_embeddings_router", "create_messages_router", "create_responses_router"]
