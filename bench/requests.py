"""Random requests for `bench.exactness`, one maker per fixture: budgets 0..512, cut windows,
minimum thinking, streaming or not, n = 1..3, chat and raw prompts that open or close
thinking; per family, what makes a random-weight model walk the paths under test (logit_bias
on the delimiters, tools, json_schema)."""

from __future__ import annotations

import functools
import random
from typing import Any


def _sampling(rng: random.Random) -> dict[str, Any]:
    """A random budget, max_tokens, seed, n and streaming."""
    budget = 0 if rng.random() < 0.1 else int(512 ** rng.random())
    return {
        "thinking_budget": budget,
        "max_tokens": budget + rng.randint(70, 200) if rng.random() < 0.9 else rng.randint(70, 120),
        "temperature": 1.0,
        "seed": rng.randint(0, 1 << 30),
        "n": rng.choice([1, 1, 1, 2, 3]),
        "stream": rng.random() < 0.5,
        "return_token_ids": True,
    }


def _window_and_minimum(rng: random.Random, body: dict[str, Any]) -> None:
    """Now and then a cut window, and a minimum thinking that fits the request."""
    if rng.random() < 0.5:
        body["thinking_cut_window"] = rng.randint(1, 32)
    if rng.random() < 0.3:
        limit = min(body["thinking_budget"], body["max_tokens"] - 70)
        body["min_thinking_tokens"] = rng.randint(0, limit)


def make_request(rng: random.Random, tok: Any) -> tuple[str, dict]:
    nums = " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 6)))
    body = _sampling(rng)
    _window_and_minimum(rng, body)
    r = rng.random()
    messages = [{"role": "user", "content": f"sum {nums}"}]
    if r < 0.6:
        return "/v1/chat/completions", {**body, "messages": messages}
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if r < 0.8:  # thinking already open, with some reasoning in the prompt
        prompt += "<think>\n" + "1+2=3.\n" * rng.randint(0, 3)
    elif r < 0.9:  # thinking already closed (a no_think pre-fill)
        prompt += "<think>\n\n</think>\n\n"
    return "/v1/completions", {**body, "prompt": prompt}


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"],
        },
    },
}
OK_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def make_qwen3_request(rng: random.Random, tok: Any) -> tuple[str, dict]:
    """A request for the random-weight Qwen3 fixture: logit_bias opens thinking about every
    other step and ends it now and then; chat requests may carry tools, a json_schema, or
    vLLM's structured_outputs (choice, regex) or bad_words."""
    path, body = make_request(rng, tok)
    think, end, tool = (
        tok.convert_tokens_to_ids(t) for t in ("<think>", "</think>", "<tool_call>")
    )
    body["logit_bias"] = {str(think): 12, str(end): 7}
    if path.endswith("completions") and "messages" not in body:
        return path, body
    r = rng.random()
    if r < 0.15:
        body |= {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    elif r < 0.25:
        body |= {"tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False}
    elif r < 0.4:
        body |= {"tools": [WEATHER]}  # auto: the model may start a call anywhere
        body["logit_bias"][str(tool)] = 6
    elif r < 0.55:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": OK_SCHEMA},
        }
    elif r < 0.75:  # vLLM's own constraint and filter fields
        body |= rng.choice(VLLM_FIELDS)
    return path, body


# vLLM's request fields the oracle checks the answer against (bench.oracle.conforms)
VLLM_FIELDS = [
    {"structured_outputs": {"choice": ["yes", "no", "maybe"]}},
    {"structured_outputs": {"regex": "[0-9]{2,3}"}},
    {"bad_words": ["Paris", "Rome", "weather"]},
]


def make_thinking_template_request(rng: random.Random, tok: Any) -> tuple[str, dict]:
    """Templates that open thinking in the generation prompt (Qwen3-2507 thinking,
    DeepSeek-R1): the Qwen3 mix, with the end delimiter pushed now and then; tools only
    where the vocabulary has `<tool_call>` (hermes), json_schema answers for all."""
    if tok.convert_tokens_to_ids("<tool_call>") in (None, tok.unk_token_id):
        path, body = make_request(rng, tok)
        if path.endswith("chat/completions") and rng.random() < 0.3:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": OK_SCHEMA},
            }
    else:
        path, body = make_qwen3_request(rng, tok)
    body["logit_bias"] = {str(tok.convert_tokens_to_ids("</think>")): 6}
    if body.get("tools") and not isinstance(body.get("tool_choice"), dict | str):
        body["logit_bias"][str(tok.convert_tokens_to_ids("<tool_call>"))] = 6
    return path, body


HARMONY_HEADERS = ("<|end|>", "<|start|>", "assistant", "<|channel|>", "final", "<|message|>")


@functools.cache
def _harmony() -> Any:
    import openai_harmony as h

    return h, h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)


def harmony_prompt(question: str) -> str:
    h, enc = _harmony()
    system = h.SystemContent.new().with_reasoning_effort(h.ReasoningEffort.LOW)
    convo = h.Conversation.from_messages(
        [
            h.Message.from_role_and_content(h.Role.SYSTEM, system),
            h.Message.from_role_and_content(h.Role.USER, question),
        ]
    )
    return enc.decode(enc.render_conversation_for_completion(convo, h.Role.ASSISTANT))


def make_gptoss_request(rng: random.Random, tok: Any) -> tuple[str, dict]:
    """gpt-oss: raw prompts rendered by harmony whose analysis channel is open (a random model
    never opens it itself), and chat requests; logit_bias on the six tokens of the end
    delimiter makes the model write it whole, in part, and broken off."""
    body = _sampling(rng)
    body["logit_bias"] = {
        str(tok.convert_tokens_to_ids(t)): rng.choice([3, 5]) for t in HARMONY_HEADERS
    }
    _window_and_minimum(rng, body)
    question = f"sum {' '.join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 6)))}"
    if rng.random() < 0.2:
        return "/v1/chat/completions", {**body, "messages": [{"role": "user", "content": question}]}
    prompt = harmony_prompt(question) + "<|channel|>analysis<|message|>"
    return "/v1/completions", {**body, "prompt": prompt + "Add.\n" * rng.randint(0, 3)}


MAKERS = {
    "qwen3": make_qwen3_request,
    "qwen3-thinking": make_thinking_template_request,
    "deepseek-r1": make_thinking_template_request,
    "gpt-oss": make_gptoss_request,
}
