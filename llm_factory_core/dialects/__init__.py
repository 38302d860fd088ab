"""Wire dialects as pure codecs, each written once and used in both directions.

- ``responses``: OpenAI's Responses API over the chat model (the gateway's ``/v1/responses``).
- ``anthropic``: Anthropic's Messages API over the chat model (the gateway's ``/v1/messages``), and
  its block-level pieces shared with the Claude plugin's encoder.

(OpenAI Chat's codec is ``llm_factory_core._openai_codec``, reused by the openai, deepseek and Qwen
plugins.) Dialect modules name API shapes, never a provider.
"""

from .anthropic import chat_request_from_messages, message_from_completion
from .anthropic_stream import MessagesEventStream
from .responses import chat_request_from_responses, new_response_id, output_items_from_completion, response_object
from .responses_stream import ResponsesEventStream

__all__ = [
    "MessagesEventStream",
    "ResponsesEventStream",
    "chat_request_from_messages",
    "chat_request_from_responses",
    "message_from_completion",
    "new_response_id",
    "output_items_from_completion",
    "response_object",
]
