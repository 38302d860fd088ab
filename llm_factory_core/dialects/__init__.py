"""Wire dialects as pure codecs, each written once and used in both directions.

- ``responses``: OpenAI's Responses API over the chat model (the gateway's ``/v1/responses``).

(OpenAI Chat's codec is ``llm_factory_core._openai_codec``, reused by the openai, deepseek and Qwen
plugins.) Dialect modules name API shapes, never a provider.
"""

from .responses import chat_request_from_responses, new_response_id, output_items_from_completion, response_object
from .responses_stream import ResponsesEventStream

__all__ = [
    "ResponsesEventStream",
    "chat_request_from_responses",
    "new_response_id",
    "output_items_from_completion",
    "response_object",
]
