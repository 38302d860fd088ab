"""The reasoning memory: bounded, least recently used out, kinds kept apart."""

from llm_factory_core.providers import ReasoningMemory


def test_recall_by_kind_and_id() -> None:
    memory = ReasoningMemory()
    memory.remember("a", "call_1", {"sig": "x"})
    assert memory.recall("a", "call_1") == {"sig": "x"}
    assert memory.recall("b", "call_1") is None
    assert memory.recall("a", None) is None


def test_least_recently_used_goes_first() -> None:
    memory = ReasoningMemory(max_entries=2)
    memory.remember("k", "1", 1)
    memory.remember("k", "2", 2)
    memory.remember("k", "1", 1)  # 1 is now the most recent
    memory.remember("k", "3", 3)
    assert memory.recall("k", "2") is None
    assert memory.recall("k", "1") == 1 and memory.recall("k", "3") == 3
    assert len(memory) == 2


def test_empty_ids_and_states_are_not_kept() -> None:
    memory = ReasoningMemory()
    memory.remember("k", "", 1)
    memory.remember("k", "x", None)
    assert len(memory) == 0
