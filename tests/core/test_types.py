from __future__ import annotations

import pytest

from llm_factory_core import ChatCompletion, ChatCompletionChunk
from llm_factory_core.testing import openai_chunks, openai_completion


def test_completion_round_trips_as_openai_wire_form() -> None:
    data = openai_completion("hi")
    data["choices"][0]["message"].pop("refusal")
    data["choices"][0].pop("logprobs")
    completion = ChatCompletion.model_validate(data)
    assert completion.model_dump(exclude_none=True) == data


def test_unknown_fields_survive() -> None:
    data = openai_completion("answer")
    data["choices"][0]["message"]["reasoning_content"] = "thinking..."
    data["usage"]["prompt_cache_hit_tokens"] = 3
    completion = ChatCompletion.model_validate(data)
    dumped = completion.model_dump(exclude_none=True)
    assert dumped["choices"][0]["message"]["reasoning_content"] == "thinking..."
    assert dumped["usage"]["prompt_cache_hit_tokens"] == 3
    assert completion.choices[0].message.get("reasoning_content") == "thinking..."


def test_dict_style_access_as_the_original_readme_uses() -> None:
    chunk = ChatCompletionChunk.model_validate(openai_chunks(["你好"])[1])
    choice = chunk.choices[0]
    assert choice.get("delta", {}).get("content") == "你好"
    assert choice["delta"]["content"] == "你好"
    assert choice.get("missing", "default") == "default"
    assert "delta" in choice and "missing" not in choice
    with pytest.raises(KeyError):
        choice["missing"]


def test_has_content_marks_the_commit_point() -> None:
    role, text, finish = (ChatCompletionChunk.model_validate(c) for c in openai_chunks(["x"]))
    assert not role.has_content()
    assert text.has_content() and finish.has_content()
    reasoning = openai_chunks([""])[1]
    reasoning["choices"][0]["delta"] = {"reasoning_content": "hmm"}
    assert ChatCompletionChunk.model_validate(reasoning).has_content()


def test_finish_reason_outside_openai_values_is_rejected() -> None:
    data = openai_completion("x", finish_reason="end_turn")
    with pytest.raises(ValueError):
        ChatCompletion.model_validate(data)


def test_the_answering_deployment_is_kept_off_the_wire_and_across_copies() -> None:
    reply = ChatCompletion.model_validate(
        {"id": "c1", "created": 1, "model": "m", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
    )
    assert reply.deployment is None
    reply._deployment = "gpt-4o#2"
    assert reply.deployment == "gpt-4o#2"
    assert "gpt-4o#2" not in reply.model_dump_json() and "deployment" not in reply.to_dict()
    assert reply.model_copy().deployment == reply.model_copy(deep=True).deployment == "gpt-4o#2"
    assert reply == ChatCompletion.model_validate(reply.to_dict())  # equality is the wire form's
