"""Agent loops over the Responses endpoint on the real Qwen3 tokenizer and official template
(random weights: a logit bias opens thinking, forced tool choices make the calls), through
the real `openai` SDK and the OpenAI Agents SDK: function calls and their outputs, namespace
and hosted tools, encrypted reasoning that restores the same prompt tokens."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import openai
import pytest

from tests.test_agents_qwen3 import ASK, MODEL, OPEN_THINKING, SCHEMA


@pytest.fixture(scope="module")
def oa(qwen3_server):
    return openai.OpenAI(base_url=qwen3_server.url + "/v1", api_key="-", max_retries=0)


FUNCTION = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": SCHEMA,
    "strict": True,
}


def respond(oa, **kw):
    kw.setdefault("input", ASK[0]["content"])
    kw.setdefault("max_output_tokens", 150)
    return oa.responses.create(
        model=MODEL,
        temperature=0,
        extra_body={"logit_bias": OPEN_THINKING, **kw.pop("extra", {})},
        **kw,
    )


def test_responses_function_call_and_encrypted_reasoning_round_trip(oa):
    r = respond(
        oa,
        tools=[FUNCTION],
        tool_choice="required",
        parallel_tool_calls=False,
        include=["reasoning.encrypted_content"],
        store=False,
        extra={"thinking_budget": 6},
    )
    reasoning, call = r.output[0], r.output[-1]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments)["city"] in ("Paris", "Rome")
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    user = {"role": "user", "content": ASK[0]["content"]}
    call_item = call.model_dump(exclude_none=True)

    def input_tokens(*items) -> int:
        nxt = respond(
            oa,
            input=[user, *items, call_item, result],
            tools=[FUNCTION],
            max_output_tokens=60,
            store=False,
            extra={"thinking_budget": 2},
        )
        assert nxt.status in ("completed", "incomplete")
        return nxt.usage.input_tokens

    text = reasoning.content[0].text
    sealed = input_tokens(
        {
            "type": "reasoning",
            "id": reasoning.id,
            "summary": [],
            "encrypted_content": reasoning.encrypted_content,
        }
    )
    plain = input_tokens(
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": text}],
        }
    )
    none = input_tokens()
    forged = {
        "type": "reasoning",
        "id": "rs_2",
        "summary": [],
        "encrypted_content": "gAAAAAB" + "x" * 80,
    }
    assert sealed == plain > none == input_tokens(forged)


def test_responses_namespace_tools_and_hosted_tools(oa, qwen3_server):
    ns = {
        "type": "namespace",
        "name": "crm",
        "description": "customer records",
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"tier": {"type": "string", "enum": ["gold", "basic"]}},
                    "required": ["tier"],
                },
            }
        ],
    }
    r = respond(
        oa,
        tools=[ns, {"type": "web_search"}],
        tool_choice="required",
        parallel_tool_calls=False,
        extra={"thinking_budget": 3},
    )
    call = r.output[-1]
    assert call.type == "function_call" and call.name == "lookup" and call.namespace == "crm"
    assert json.loads(call.arguments)["tier"] in ("gold", "basic")
    raw = httpx.post(
        qwen3_server.url + "/v1/responses",
        json={
            "model": MODEL,
            "input": "hi",
            "tools": [{"type": "web_search"}],
            "max_output_tokens": 4,
        },
    )
    assert "tools.web_search" in raw.headers["x-thinkbudget-ignored-fields"]


def test_responses_stream_function_call(oa):
    events = list(
        respond(
            oa,
            tools=[FUNCTION],
            tool_choice="required",
            parallel_tool_calls=False,
            stream=True,
            extra={"thinking_budget": 4},
        )
    )
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types
    done = events[-1]
    assert done.type == "response.completed"
    call = done.response.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments)["city"] in ("Paris", "Rome")
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_openai_agents_sdk_runs_a_tool_loop_with_a_turn_budget(qwen3_server):
    """The OpenAI Agents SDK (Responses model) runs a tool step then an answer step; each step
    is stored, and the second counts the turn's thinking under the turn scope."""
    from agents import Agent, ModelSettings, Runner, function_tool, set_tracing_disabled
    from agents.models.openai_responses import OpenAIResponsesModel
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def get_weather(city: Literal["Paris", "Rome"]) -> str:
        """Current weather in a city."""
        calls.append(city)
        return "sunny, 21 C"

    client = AsyncOpenAI(base_url=qwen3_server.url + "/v1", api_key="-", max_retries=0)
    settings = ModelSettings(
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=120,
        extra_body={
            # thinking opens at once; after it, the turn ends (<|im_end|>) unless a grammar
            # holds the answer (the required tool call of the first step)
            "logit_bias": {**OPEN_THINKING, "151645": 50},
            "thinking_budget": 8,
            "thinking_budget_scope": "turn",
        },
    )
    agent = Agent(
        name="weather",
        instructions="Answer with the weather tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        model_settings=settings,
    )
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    assert len(calls) == 1 and calls[0]  # the tool ran once; then tool_choice reset to auto
    steps = [r.response_id for r in result.raw_responses]
    assert len(steps) == 2 and isinstance(result.final_output, str)
    stored = [httpx.get(f"{qwen3_server.url}/v1/responses/{s}").json() for s in steps]
    first, second = (s["thinking"] for s in stored)
    assert first["tokens"] <= 8 and first["turn_tokens"] == first["tokens"]
    assert second["turn_tokens"] == second["tokens"] + (8 - second["budget"])
    assert stored[0]["output"][-1]["type"] == "function_call"
