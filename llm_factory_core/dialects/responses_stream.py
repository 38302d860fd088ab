"""Chat chunks to the Responses API's semantic stream events, with sequence numbers.

``response.created`` and ``response.in_progress`` open the stream; each output item (reasoning,
message, function call) is announced (``response.output_item.added``), grows by deltas
(``response.reasoning_text.delta``, ``response.output_text.delta``,
``response.function_call_arguments.delta``) and is closed (``*.done``,
``response.output_item.done``) when the next item starts or the stream finishes; then
``response.completed`` (or ``response.incomplete``) carries the same Response object as the
non-streamed reply, or ``response.failed`` carries the error of a stream that broke.
"""

from __future__ import annotations

import uuid
from typing import Any

from .._types import ChatCompletionChunk
from .responses import function_call_item, message_item, reasoning_item, response_object, usage_from_chat

__all__ = ["ResponsesEventStream"]


class ResponsesEventStream:
    """Feed it chat chunks; it returns the events to send for each."""

    def __init__(self, body: dict[str, Any], *, response_id: str, created_at: int, model: str) -> None:
        self.body = body
        self.response_id = response_id
        self.created_at = created_at
        self.model = model
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._seq = 0
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its item
        self._thinking: list[Any] = []

    # -- events ----------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(
            self.body,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            output=list(self.output),
            usage=self.usage,
            finish_reason=self.finish_reason,
            status=status,
            error=error,
        )

    def start(self) -> list[dict[str, Any]]:
        response = self._snapshot("in_progress")
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def _index(self, item: dict[str, Any]) -> int:
        return self.output.index(item)

    def _close(self) -> list[dict[str, Any]]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self._index(item)
        events: list[dict[str, Any]] = []
        if item["type"] == "reasoning":
            text = item.get("content", [{}])[0].get("text", "") if item.get("content") else ""
            if self._thinking:
                done = reasoning_item(item["id"], text, list(self._thinking))
                item.clear()
                item.update(done)
            if text:
                events.append(
                    self._event(
                        "response.reasoning_text.done",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        text=text,
                    )
                )
        elif item["type"] == "function_call":
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
        elif item["type"] == "message":
            part = item["content"][0]
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            events.append(
                self._event(
                    "response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part
                )
            )
        item["status"] = "completed"
        return [*events, self._event("response.output_item.done", output_index=index, item=item)]

    def _open_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.output.append(item)
        self._open = item
        index = len(self.output) - 1
        announced = {**item, "status": "in_progress"}
        if item["type"] == "message":
            announced["content"] = []
        events.append(self._event("response.output_item.added", output_index=index, item=announced))
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(
                self._event(
                    "response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part
                )
            )
        return events

    # -- input -----------------------------------------------------------------------------------

    def feed(self, chunk: ChatCompletionChunk) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if chunk.usage is not None:
            self.usage = usage_from_chat(chunk.usage.model_dump(exclude_none=True))
        if not chunk.choices:
            return events
        choice = chunk.choices[0]
        delta = choice.delta.model_dump(exclude_none=True)
        reasoning = delta.get("reasoning_content")
        if reasoning or delta.get("thinking_blocks"):
            if self._open is None or self._open["type"] != "reasoning":
                events += self._open_item(reasoning_item("rs_" + uuid.uuid4().hex, ""))
            item = self._open
            assert item is not None
            self._thinking += delta.get("thinking_blocks") or []
            if reasoning:
                content = item.setdefault("content", [{"type": "reasoning_text", "text": ""}])
                content[0]["text"] += reasoning
                events.append(
                    self._event(
                        "response.reasoning_text.delta",
                        item_id=item["id"],
                        output_index=self._index(item),
                        content_index=0,
                        delta=reasoning,
                    )
                )
        text = delta.get("content")
        if text:
            if self._open is None or self._open["type"] != "message":
                events += self._open_item(message_item("msg_" + uuid.uuid4().hex, "", "in_progress"))
            item = self._open
            assert item is not None
            item["content"][0]["text"] += text
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        for call in delta.get("tool_calls") or []:
            events += self._tool_delta(call)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        item = self._calls.get(call.get("index", 0))
        function = call.get("function") or {}
        if item is None:
            item = function_call_item("fc_" + uuid.uuid4().hex, call.get("id") or "", function.get("name") or "", "")
            item["status"] = "in_progress"
            self._calls[call.get("index", 0)] = item
            events += self._open_item(item)
        elif self._open is not item:  # interleaved calls: make it the open one again
            events += self._close()
            self._open = item
        arguments = function.get("arguments") or ""
        if arguments:
            item["arguments"] += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    delta=arguments,
                )
            )
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Close what is open (interleaved tool calls included) and complete the response."""
        events = self._close()
        for item in self.output:
            if item.get("status") != "completed":
                self._open = item
                events += self._close()
        response = self._snapshot("completed")
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return [*events, self._event(kind, response=response)]

    @property
    def response(self) -> dict[str, Any]:
        return self._snapshot("completed")

    def fail(self, error: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream broke after it started: ``response.failed`` with the error."""
        return [self._event("response.failed", response=self._snapshot("failed", error))]
