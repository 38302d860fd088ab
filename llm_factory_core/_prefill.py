"""Stream continuation by assistant prefill: which deployments can continue a broken stream, and
the request each is sent.

A provider declares prefill in its ``Capabilities`` (Claude, Qwen, DeepSeek's prefix mode); a
deployment overrides that in configuration (``prefill: true`` for an OpenAI-compatible server that
continues an assistant message sent last, ``prefill: false`` to opt one out). Some servers need a
body switch for it: vLLM continues the final message only with
``{"continue_final_message": true, "add_generation_prompt": false}`` (its chat completion extra
parameters; the two cannot be combined, vllm/entrypoints/openai/protocol.py), which the deployment
gives as ``prefill_params``, merged into continuation requests only.
"""

from __future__ import annotations

from ._deployment import Deployment
from ._request import ChatRequest

__all__ = ["can_prefill", "continuation_request"]


def can_prefill(deployment: Deployment) -> bool:
    """Whether ``deployment`` continues an assistant message given as the last message."""
    if deployment.prefill is not None:
        return deployment.prefill
    return deployment.provider_cls.capabilities.prefill


def continuation_request(request: ChatRequest, text: str, deployment: Deployment) -> ChatRequest:
    """``request`` with ``text`` as the assistant message to continue, plus the deployment's
    ``prefill_params`` (they win over the caller's ``extra_body``: they are how this server is
    asked to continue)."""
    update: dict[str, object] = {"messages": [*request.messages, {"role": "assistant", "content": text}]}
    if deployment.prefill_params:
        update["extra_body"] = {**(request.extra_body or {}), **deployment.prefill_params}
    return request.model_copy(update=update)
