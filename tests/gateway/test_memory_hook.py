"""The gateway's conversation-memory hook: opt-in per cascade, old turns summarised past budget."""

from __future__ import annotations

import pytest

from ecocascade.exceptions import ConfigError
from ecocascade.gateway import parse_gateway_config
from ecocascade.gateway.memory import MemorySpec, build_memory, compact_request
from ecocascade.testing import FakeLLMServer
from ecocascade.types import ChatRequest, Message


def config(server: FakeLLMServer, **gateway: object) -> dict[str, object]:
    tiers = [{"model": "openai/cheap", "api_base": server.api_base},
             {"model": "openai/strong", "api_base": server.api_base}]  # fmt: skip
    return {"cascades": {"support": {"tiers": tiers, "judge": {"type": "contains", "text": "x"}}},
            **gateway}  # fmt: skip


def long_chat(turns: int) -> tuple[Message, ...]:
    messages: list[Message] = [{"role": "system", "content": "You help with trips."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Q{i}: " + "what about Porto? " * 30})
        messages.append({"role": "assistant", "content": f"A{i}: " + "Porto is nice. " * 30})
    messages.append({"role": "user", "content": "And the trains?"})
    return tuple(messages)


def test_memory_for_a_cascade_that_does_not_exist_is_a_config_error(
    server: FakeLLMServer,
) -> None:
    with pytest.raises(ConfigError, match="memory: no such cascade: sales"):
        parse_gateway_config(config(server, memory={"sales": {}}), source="gw.yaml")
    with pytest.raises(ConfigError, match="keep_recent"):
        parse_gateway_config(config(server, memory={"support": {"keep_recent": 1}}))


async def test_a_long_conversation_reaches_the_cascade_summarised_by_its_cheapest_tier(
    server: FakeLLMServer,
) -> None:
    from ecocascade.gateway.app import Gateway

    server.script("cheap", "User asks about Porto trips.")
    gateway = Gateway(
        parse_gateway_config(config(server, memory={"support": {"budget_tokens": 300}}))
    )
    request = ChatRequest(messages=long_chat(5), params={"temperature": 0})

    compacted, cost = await gateway._compact("support", gateway.cascades["support"], request)

    assert len(compacted.messages) == 1 + 4 and not compacted.is_first_turn
    assert "User asks about Porto trips." in str(compacted.messages[0]["content"])
    assert compacted.messages[1:] == request.messages[-4:] and compacted.params == request.params
    assert len(server.requests_for("cheap")) == 1 and server.requests_for("strong") == []
    assert cost == 0.0 or cost is None  # FakeLLMServer's models have no price


async def test_cascades_without_memory_and_short_chats_pass_through_untouched(
    server: FakeLLMServer,
) -> None:
    from ecocascade.gateway.app import Gateway

    gateway = Gateway(parse_gateway_config(config(server)))
    request = ChatRequest(messages=long_chat(5))
    assert (await gateway._compact("support", gateway.cascades["support"], request))[0] is request
    memory = build_memory(MemorySpec(budget_tokens=100_000), gateway.cascades["support"])
    assert await compact_request(memory, request) == (request, None)
    assert server.requests == []
