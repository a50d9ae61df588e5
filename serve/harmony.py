"""gpt-oss conversations in harmony, rendered and read back with vLLM's own harmony code
(gpt-oss ships no chat template that vLLM uses; its conversations are harmony messages).

Rendering (`HarmonyTemplate.render`) is vLLM's chat path for gpt-oss: its preamble (a system
message with `Reasoning: low|medium|high` from `reasoning_effort` and the date; the first
system or developer message's text and the function tools as the developer message), each
message through vLLM's `parse_chat_input_to_harmony_message` (assistant tool calls as
commentary messages to `functions.NAME`, tool results from `functions.NAME`, history
reasoning as analysis, which harmony drops before the last final answer), and vLLM's
`render_for_completion`. Harmony encodes message text as text, so a user cannot forge a
control token. Deviation: with thinking disabled (`enable_thinking: false`,
`reasoning_effort: "none"`, which vLLM refuses for harmony) the prompt ends with an empty
analysis message and the final channel open, and the budget state keeps thinking closed.

Reading (`HarmonyReader`): vLLM's `HarmonyParser` turns the output tokens into reasoning (analysis
messages, a second one in a turn included), content (the final channel, and commentary
without a recipient) and tool calls (commentary to `functions.NAME`), streamed or whole. It
is primed with what the prompt already opened (the final channel's header when thinking is
disabled). The budget state ends thinking when the analysis turns into a commentary message
(`answer_starts` of the gpt-oss profile), so a cut never lands in a tool call.

Launch: used by the server when the model's architecture is gpt-oss.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from thinkbudget.budget.profile import HARMONY_END, HARMONY_START
from thinkbudget.serve.budgeting import RequestError

EFFORTS = ("low", "medium", "high")


def _messages(messages: list[dict], tools: list[dict] | None, effort: str | None) -> list[Any]:
    """vLLM's harmony messages of a chat request (its preamble, then each message)."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionToolsParam
    from vllm.entrypoints.openai.parser import harmony_utils as hu
    from vllm.exceptions import VLLMClientError

    chat = [{k: v for k, v in m.items() if v is not None} for m in messages]
    for m in chat:  # vLLM's name for a message's reasoning
        if "reasoning_content" in m:
            m["reasoning"] = m.pop("reasoning_content")
    instructions, rest = hu.extract_instructions_from_messages(chat)
    try:
        specs = [ChatCompletionToolsParam.model_validate(t) for t in tools] if tools else None
        head = hu.build_harmony_preamble(
            instructions=instructions,
            tools=specs,
            reasoning_effort=effort if effort in EFFORTS else None,
        )
        return head + hu.parse_chat_inputs_to_harmony_messages(rest)
    except (ValueError, VLLMClientError) as exc:  # vLLM's checks (a tool type it can't carry)
        message = (str(exc).strip() or type(exc).__name__).splitlines()[-1]
        raise RequestError(message, "messages") from None


class HarmonyTemplate:
    """`render(messages, tools, kwargs)` like `SafeTemplate`, for gpt-oss."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        encode = tokenizer.backend_tokenizer.encode
        self.closed = encode(HARMONY_START + HARMONY_END, add_special_tokens=False).ids
        self.start = tokenizer.convert_tokens_to_ids("<|start|>")

    def render(self, messages: list[dict], tools: list[dict] | None, kwargs: dict) -> list[int]:
        from openai_harmony import Conversation
        from vllm.entrypoints.openai.parser import harmony_utils as hu

        msgs = _messages(messages, tools, kwargs.get("reasoning_effort"))
        if not kwargs.get("add_generation_prompt", True):
            conversation = Conversation.from_messages(hu.auto_drop_analysis_messages(msgs))
            return list(hu.get_encoding().render_conversation(conversation))
        ids = hu.render_for_completion(msgs)
        return ids + self.closed if kwargs.get("enable_thinking") is False else ids

    def answer_grammar(self, structured: Any, profile: Any, prompt_ids: list[int]) -> Any:
        """The request's answer format as a structural tag around the final channel, as vLLM
        constrains gpt-oss (`vllm.parser.harmony`), built from the profile's delimiter ids
        so a budget's cut (termination text, then the end delimiter) is always inside it:
        while the analysis is open any token but `<|end|>`, then the end delimiter (which
        opens the final channel), then the format. Deviations: no `json` content type after
        `final`, no commentary before the answer, and a `structural_tag` is taken as given
        (it describes the whole output, harmony's headers included, as vLLM's tool tags do)."""
        from vllm.parser.abstract_parser import structured_outputs_to_format
        from vllm.sampling_params import StructuredOutputsParams
        from xgrammar.structural_tag import (
            AnyTokensFormat,
            SequenceFormat,
            StructuralTag,
            TokenFormat,
        )

        if structured is None or structured.structural_tag is not None:
            return structured
        content = structured_outputs_to_format(structured)
        start, end = profile.start_delimiter, profile.end_delimiter
        head: list[Any] = []
        if not end.ends_before(prompt_ids, len(prompt_ids)):  # the answer is not open yet
            if not start.ends_before(prompt_ids, len(prompt_ids)):
                head += [TokenFormat(token=t) for t in start.ids]
            head.append(AnyTokensFormat(exclude_tokens=[end.ids[0]]))
            head += [TokenFormat(token=t) for t in end.ids]
        tag = StructuralTag(format=SequenceFormat(elements=[*head, content]))
        return StructuredOutputsParams(structural_tag=json.dumps(tag.model_dump()))

    def reader(self, prompt_ids: list[int]) -> HarmonyReader:
        """A reader of one choice's output, after what the prompt opened."""
        return HarmonyReader(self.tokenizer, self.opened(prompt_ids))

    def opened(self, prompt_ids: list[int]) -> list[int]:
        """The tokens the prompt's last assistant message already holds (after its
        `<|start|>assistant`): what a reader must see before the output."""
        for i in range(len(prompt_ids) - 1, -1, -1):
            if prompt_ids[i] == self.start:
                return prompt_ids[i + 2 :]
        return []


@cache
def _parser_class() -> Any:
    """vLLM's HarmonyParser with its reasoning and tool parsers (`openai_gptoss`, `openai`):
    tool calls are always read; whether they are surfaced is the request's tool plan."""
    from vllm.parser.parser_manager import ParserManager

    return ParserManager.get_parser(
        tool_parser_name="openai",
        reasoning_parser_name="openai_gptoss",
        enable_auto_tools=True,
        is_harmony=True,
    )


@cache
def _request() -> Any:
    """The vLLM request `HarmonyParser.parse_delta` reads (only `include_reasoning`)."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest(messages=[], model="m")


class HarmonyReader:
    """One choice's output read as vLLM reads gpt-oss's, token by token: `feed` returns the
    (reasoning, content) text and keeps the tool-call deltas (OpenAI's shape) for `take`."""

    def __init__(self, tokenizer: Any, opened: list[int]) -> None:
        self.parser = _parser_class()(tokenizer, None)
        self.parser.process_chunk(opened)  # the header the prompt already holds
        self.deltas: list[dict] = []
        self.taken = 0

    def feed(self, ids: list[int], finished: bool = False) -> tuple[str, str]:
        d = self.parser.parse_delta("", ids, _request(), finished=finished)
        if d is None:
            return "", ""
        self.deltas += [c.model_dump(exclude_none=True) for c in d.tool_calls or ()]
        return d.reasoning or "", d.content or ""

    def take(self) -> list[dict]:
        """The tool-call deltas not taken yet."""
        out, self.taken = self.deltas[self.taken :], len(self.deltas)
        return out

    def calls(self) -> list[dict]:
        """The whole tool calls (the deltas joined)."""
        calls: dict[int, dict] = {}
        for d in self.deltas:
            fn = d.get("function", {})
            call = calls.setdefault(d["index"], {"id": d.get("id"), "type": "function"})
            whole = call.setdefault("function", {"name": "", "arguments": ""})
            whole["name"] += fn.get("name") or ""
            whole["arguments"] += fn.get("arguments") or ""
        return [calls[i] for i in sorted(calls)]
