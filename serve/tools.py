"""Tool calling and structured output, on vLLM's own tool parsers and schema helpers.

- `tool_choice: auto` (the default when `tools` are given) needs `--enable-auto-tool-choice`
  and `--tool-call-parser NAME`, as with `vllm serve` (hermes for Qwen3). The answer text is
  parsed by that parser (`extract_tool_calls`, `extract_tool_calls_streaming`).
- `required` and a named tool: the answer is constrained to the JSON that vLLM's
  `get_json_schema_from_tools` derives (a list of {name, parameters}, or the named tool's
  parameters) and read back as tool calls, as vLLM's server does.
- gpt-oss (harmony): tool calls are commentary messages, read by vLLM's harmony parser as the
  tokens come (`serve.harmony.HarmonyReader`); the plan only says whether they are surfaced
  (`auto`, which needs `--enable-auto-tool-choice --tool-call-parser openai` as vLLM does).
  `required` and named tools are refused there: harmony has no grammar for them here yet.
- `response_format` `json_object` / `json_schema`, and vLLM's `structured_outputs` (json,
  regex, choice, grammar, json_object, structural_tag; or the former `guided_*` names): vLLM
  structured outputs.
Every constraint applies to the answer only: the engine runs with the profile's reasoning
parser, so the grammar starts after the end delimiter (a natural end or the server's cut),
and the cut then leaves the separator to the grammar. A tool-call start token sampled inside
thinking ends the thinking (`BudgetParams.answer_ids`), so a cut never lands in a call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from thinkbudget.serve.budgeting import RequestError
from thinkbudget.serve.compat import structured_outputs_of
from thinkbudget.serve.protocol import ChatCompletionRequest


@dataclass
class ToolPlan:
    mode: str  # "none" | "auto" | "required" | "named" | "harmony" (gpt-oss, calls surfaced)
    vreq: Any = None  # vLLM's ChatCompletionRequest, which its parsers read
    parser: Any = None  # a vLLM ToolParser (auto)
    named: str | None = None
    structured: Any = None  # vllm StructuredOutputsParams for the answer, if any
    streamed: list[str] = field(default_factory=list)  # answer text so far (streaming)
    sent: list[str] = field(default_factory=list)  # content sent so far (streaming)
    ids: list[int] = field(default_factory=list)
    called: bool = False  # a tool call was streamed (streaming)


def fork(plan: ToolPlan, tokenizer: Any) -> ToolPlan:
    """A choice's own copy: vLLM's streaming parsers keep per-stream state."""
    parser = type(plan.parser)(tokenizer, plan.vreq.tools) if plan.parser is not None else None
    return replace(plan, parser=parser, streamed=[], sent=[], ids=[], called=False)


def _vllm_request(req: ChatCompletionRequest) -> Any:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest as VReq

    body = {"messages": [{"role": "user", "content": ""}], "model": "m"}
    if req.tools:
        body["tools"] = [t.model_dump(exclude_none=True) for t in req.tools]
        choice = req.tool_choice
        body["tool_choice"] = choice.model_dump() if hasattr(choice, "model_dump") else choice
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    try:
        return VReq.model_validate(body)
    except ValueError as exc:  # vLLM's own checks: a named tool not in `tools`, ...
        raise RequestError(str(exc).splitlines()[-1].strip(), "tool_choice") from None


def _response_format(req: ChatCompletionRequest) -> Any:
    from vllm.sampling_params import StructuredOutputsParams

    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return StructuredOutputsParams(json_object=True)
    schema = (fmt.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise RequestError(
            "response_format.json_schema.schema must be a JSON schema object",
            "response_format.json_schema.schema",
        )
    return StructuredOutputsParams(json=schema)


def answer_constraint(req: Any) -> Any:
    """vLLM StructuredOutputsParams for the answer from `response_format` (chat) or vLLM's
    `structured_outputs` (or its former `guided_*` names); None if the answer is free."""
    from vllm.sampling_params import StructuredOutputsParams

    fmt = _response_format(req) if getattr(req, "response_format", None) else None
    given = structured_outputs_of(req)
    if given is None:
        return fmt
    if fmt is not None:
        raise RequestError(
            "send response_format or structured_outputs, not both", "response_format"
        )
    try:
        return StructuredOutputsParams(**given)
    except (TypeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RequestError(f"structured_outputs: {message}", "structured_outputs") from None


def _harmony(req: ChatCompletionRequest, config: Any, choice: Any, answer: Any) -> ToolPlan:
    """gpt-oss: calls are read from the commentary channel; `auto` surfaces them."""
    if not req.tools or choice == "none":
        return ToolPlan("none", structured=answer)
    if choice != "auto":
        raise RequestError(
            "gpt-oss (harmony) serves tool_choice 'auto' and 'none'; 'required' and named "
            "tools are not supported with it yet",
            "tool_choice",
        )
    if not (config.enable_auto_tool_choice and config.tool_call_parser == "openai"):
        raise RequestError(
            '"auto" tool choice with gpt-oss requires --enable-auto-tool-choice and '
            "--tool-call-parser openai (as with vllm serve)",
            "tool_choice",
        )
    return ToolPlan("harmony", _vllm_request(req), structured=answer)


def plan_tools(
    req: ChatCompletionRequest, config: Any, tokenizer: Any, harmony: bool = False
) -> ToolPlan:
    """How this request's answer is constrained and read back."""
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.tool_parsers.utils import get_json_schema_from_tools

    choice = req.tool_choice if req.tool_choice is not None else ("auto" if req.tools else None)
    if req.tool_choice is not None and not req.tools and req.tool_choice != "none":
        raise RequestError("tool_choice needs tools", "tool_choice")
    answer = answer_constraint(req)
    if harmony:
        return _harmony(req, config, choice, answer)
    if not req.tools or choice == "none":
        return ToolPlan("none", structured=answer)
    vreq = _vllm_request(req)
    if choice == "auto":
        if not (config.enable_auto_tool_choice and config.tool_call_parser):
            raise RequestError(
                '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                "to be set (as with vllm serve); or send tool_choice 'required' or a named tool",
                "tool_choice",
            )
        from vllm.tool_parsers import ToolParserManager

        parser = ToolParserManager.get_tool_parser(config.tool_call_parser)(tokenizer, vreq.tools)
        return ToolPlan("auto", vreq, parser, structured=answer)
    if answer is not None:
        raise RequestError(
            f"tool_choice {choice!r} constrains the answer already: drop response_format / "
            "structured_outputs",
            "tool_choice",
        )
    schema = get_json_schema_from_tools(vreq.tool_choice, vreq.tools, vreq.parallel_tool_calls)
    named = None if choice == "required" else req.tool_choice.function.get("name")
    structured = StructuredOutputsParams(json=schema)
    return ToolPlan("named" if named else "required", vreq, named=named, structured=structured)


def _call(name: str, arguments: Any) -> dict[str, Any]:
    from vllm.renderers.chat_utils import make_tool_call_id

    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {
        "id": make_tool_call_id(),
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


def extract(plan: ToolPlan, content: str) -> tuple[str | None, list[dict]]:
    """(content left, tool calls) of a finished answer."""
    if plan.mode == "auto":
        info = plan.parser.extract_tool_calls(content, plan.vreq)
        if not info.tools_called:
            return content, []
        calls = [c.model_dump() for c in info.tool_calls]
        return info.content, calls
    if plan.mode == "named":
        return None, [_call(plan.named, content)]
    if plan.mode == "required":
        try:
            items = json.loads(content)
            return None, [_call(item["name"], item["parameters"]) for item in items]
        except (json.JSONDecodeError, KeyError, TypeError):
            return content, []  # cut short by max_tokens: not a complete call
    return content, []


def stream_delta(plan: ToolPlan, delta: str, ids: list[int]) -> tuple[str, list[dict] | None]:
    """(content to send, tool-call deltas) for a streamed content delta (auto); required and
    named calls are sent whole when the choice ends (`finish_delta`)."""
    if plan.mode != "auto":
        plan.streamed.append(delta)
        return "", None
    previous = "".join(plan.streamed)
    plan.streamed.append(delta)
    prev_ids = list(plan.ids)
    plan.ids += ids
    out = plan.parser.extract_tool_calls_streaming(
        previous, previous + delta, delta, prev_ids, plan.ids, ids, plan.vreq
    )
    if out is None:
        return "", None
    calls = [c.model_dump(exclude_none=True) for c in out.tool_calls] or None
    plan.sent.append(out.content or "")
    plan.called |= calls is not None
    return out.content or "", calls


def finish_delta(plan: ToolPlan) -> tuple[str, list[dict] | None]:
    """(content, tool-call deltas) sent when a choice ends: for required / named the whole
    calls (or the answer as text if it holds none: cut short by max_tokens); for auto the
    content the parser held back as a possible tag start and the final parse says is text."""
    if plan.mode == "auto":
        content, _ = extract(plan, "".join(plan.streamed))
        sent = "".join(plan.sent)
        rest = content[len(sent) :] if content and content.startswith(sent) else ""
        return rest, None
    if plan.mode not in ("required", "named"):
        return "", None
    content, calls = extract(plan, "".join(plan.streamed))
    plan.called |= bool(calls)
    return content or "", [{"index": i, **c} for i, c in enumerate(calls)] or None


def finish_reason(plan: ToolPlan, called: bool, reason: str | None) -> str | None:
    """vLLM's: `tool_calls` when an auto or required answer called tools."""
    if called and reason == "stop" and plan.mode in ("auto", "required", "harmony"):
        return "tool_calls"
    return reason
