"""Request and response models of the OpenAI-compatible API.

Requests accept fields they do not define, as vLLM's server does (the routes report them in a
header, and refuse unknown fields that look like thinking fields: a misspelt budget is a 400,
never silently ignored). Budgets are strict integers (`true` or `1.5` as a budget is a 400).
Fields under `/docs` carry their descriptions.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

# What the engine's wire format (msgpack) carries: a larger int is a 400 here, not a 500 there.
Int64 = Annotated[StrictInt, Field(ge=-(1 << 63), lt=1 << 63)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Requests
class _Open(BaseModel):
    """Accepts fields it does not define (as vLLM's server does); the routes name them in the
    `x-thinkbudget-ignored-fields` header, and refuse those that look like thinking fields."""

    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[dict[str, Any]] | None = Field(
        None, description="text, or text parts ({type: text, text}); null with tool_calls"
    )

    def template_dict(self) -> dict[str, Any]:
        """The message as the chat template sees it (text parts joined)."""
        out = self.model_dump(exclude_none=True)
        out["content"] = self.content or ""  # templates read it as text (vLLM's "string" format)
        if isinstance(self.content, list):
            texts = [p.get("text") for p in self.content if p.get("type") == "text"]
            if len(texts) != len(self.content) or not all(isinstance(t, str) for t in texts):
                raise ValueError("only text content parts are supported by a text model")
            out["content"] = "".join(texts)
        if "reasoning" in out:  # vLLM's name for it; templates read reasoning_content
            reasoning = out.pop("reasoning")
            out.setdefault("reasoning_content", reasoning)
        return out


class StreamOptions(_Open):
    include_usage: StrictBool = False


class AnthropicThinking(_Strict):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"] = Field(
        description="enabled (with budget_tokens); adaptive or between_tools (the budget of the "
        "effort level, output_config.effort on Messages); disabled"
    )
    budget_tokens: StrictInt | None = Field(None, description="the thinking budget (enabled)")
    display: Literal["summarized", "omitted"] | None = Field(
        None, description="omitted: thinking blocks carry only their signature (Messages)"
    )


class FunctionDef(_Open):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: dict[str, StrictStr] = Field(description="{name: the tool to call}")


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = Field(
        None, description="{name, schema, strict}: the answer must match `schema`"
    )


Stop = StrictStr | Annotated[list[StrictStr], Field(max_length=16)] | None
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]  # vLLM rejects 0
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
Bias = dict[str, Annotated[float, Field(ge=-100, le=100)]] | None


class ThinkingFields(_Open):
    """The budget fields shared by both endpoints (thinkbudget's own, and their aliases)."""

    thinking_budget: StrictInt | None = Field(
        None, description="max thinking tokens the model may generate; -1 or absent: unlimited"
    )
    thinking_token_budget: StrictInt | None = Field(None, description="vLLM's name for it")
    max_thinking_tokens: StrictInt | None = Field(None, description="NVIDIA NIM's name for it")
    thinking: AnthropicThinking | None = Field(
        None, description="Anthropic's shape: {type: enabled, budget_tokens} or {type: disabled}"
    )
    thinking_cut_window: StrictInt | None = Field(
        None, description="W: from budget - W on, cut at the first line or sentence end"
    )
    min_thinking_tokens: StrictInt | None = Field(
        None, description="an end of thinking before this many tokens becomes 'Wait,'"
    )
    termination_text: StrictStr | None = Field(
        None, description="forced at a cut before the end delimiter; '' gives a hard cut"
    )
    thinking_budget_scope: Literal["request", "turn"] | None = Field(
        None,
        description="turn: thinking already written in this agent turn (reasoning of assistant "
        "messages after the last user message) counts against the budget; default: the "
        "server's --thinking-budget-scope",
    )


class SamplingExtras(_Open):
    """Sampling fields of OpenAI's chat API and vLLM's extras that every endpoint takes
    (the Responses and Messages requests forward them to the chat request they become)."""

    frequency_penalty: Penalty | None = None
    logit_bias: Bias = Field(None, description="token id (as a string) -> bias")
    presence_penalty: Penalty | None = None
    seed: Int64 | None = None
    # -- vLLM's sampling extras ----------------------------------------------------------
    top_k: Annotated[StrictInt, Field(ge=-1, lt=1 << 63)] | None = Field(
        None, description="0 or -1 disables; a value over the vocabulary size keeps every token"
    )
    min_p: Probability | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] | None = None
    min_tokens: Annotated[StrictInt, Field(ge=0)] = 0
    ignore_eos: StrictBool = False
    stop_token_ids: list[Annotated[StrictInt, Field(ge=0, lt=1 << 31)]] | None = None
    return_token_ids: StrictBool = Field(False, description="return prompt and output token ids")
    structured_outputs: dict[str, Any] | None = Field(
        None,
        description="vLLM's answer constraint: one of json, regex, choice, grammar, "
        "json_object, structural_tag (applies after thinking, as response_format)",
    )
    bad_words: list[StrictStr] | None = Field(
        None, description="words the model may not write (never blocks what a cut forces)"
    )
    allowed_token_ids: list[Annotated[StrictInt, Field(ge=0, lt=1 << 31)]] | None = Field(
        None, description="the only tokens the model may sample (must include what a cut forces)"
    )
    priority: Int64 = Field(
        0,
        description="scheduling priority (lower first; vLLM ignores it under --scheduling-policy fcfs)",
    )
    cache_salt: StrictStr | None = Field(
        None, description="isolates this request's prefix-cache entries (vLLM's cache_salt)"
    )

    def sampling_extras(self) -> dict[str, Any]:
        """These fields as a chat request's, those left at their defaults left out."""
        return self.model_dump(include=set(SamplingExtras.model_fields), exclude_defaults=True)


class SamplingFields(ThinkingFields, SamplingExtras):
    model: StrictStr | None = None
    n: StrictInt = 1
    stop: Stop = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: TopP | None = None
    user: StrictStr | None = None


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    logprobs: StrictBool = False
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    max_completion_tokens: StrictInt | None = None
    max_tokens: StrictInt | None = None
    reasoning_effort: Effort | None = Field(
        None, description="none disables thinking; other levels map to the server's budgets"
    )
    response_format: ResponseFormat | None = Field(
        None, description="constrains the answer (after thinking) to JSON / a JSON schema"
    )
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    # -- not OpenAI's: templating --------------------------------------------------------
    enable_thinking: StrictBool | None = Field(None, description="the chat template's switch")
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: StrictBool = True
    continue_final_message: StrictBool = Field(
        False, description="continue the last (assistant) message instead of a new turn"
    )


class CompletionRequest(SamplingFields):
    prompt: (
        StrictStr
        | Annotated[list[StrictInt], Field(min_length=1)]
        | Annotated[list[StrictStr], Field(min_length=1)]
        | Annotated[list[Annotated[list[StrictInt], Field(min_length=1)]], Field(min_length=1)]
    ) = Field(description="text, token ids, or a list of either (one choice set per prompt)")
    echo: StrictBool = False
    logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    max_tokens: StrictInt | None = 16


# ---------------------------------------------------------------------------------------------
# Responses
class ThinkingStats(BaseModel):
    """Per-choice thinking report (not OpenAI's)."""

    tokens: int  # thinking tokens the model generated (forced tokens excluded)
    budget: int | None  # the effective budget after clamping; None = unlimited
    cut: bool  # whether the server cut thinking
    forced_tokens: int  # tokens the server forced (termination text, extension text)
    turn_tokens: int | None = None  # with the turn scope: this turn's thinking, this step's too

    @pydantic.model_serializer(mode="wrap")
    def _scoped_only(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if out.get("turn_tokens") is None:  # reported with the turn scope only
            out.pop("turn_tokens", None)
        return out


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # -- not OpenAI's: the reasoning text under DeepSeek/Qwen's and vLLM's names ----------
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    logprobs: dict[str, Any] | None = Field(
        None, description="{content: [...], reasoning: [...]}; forced tokens: forced: true"
    )
    finish_reason: str | None
    # -- not OpenAI's --
    thinking: ThinkingStats | None = None
    prompt_token_ids: list[int] | None = None  # with return_token_ids
    token_ids: list[int] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    # -- not OpenAI's --
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None
    # -- not OpenAI's: sent with the choice's last chunk --
    thinking: ThinkingStats | None = None
    prompt_token_ids: list[int] | None = None  # with return_token_ids
    token_ids: list[int] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None
    # -- not OpenAI's --
    thinking: ThinkingStats | None = None
    prompt_token_ids: list[int] | None = None  # with return_token_ids
    token_ids: list[int] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody
