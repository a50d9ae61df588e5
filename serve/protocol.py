"""Request and response models of the OpenAI-compatible API.

Fields follow OpenAI's order; what OpenAI does not define is fenced under a comment. Requests
forbid unknown fields (a misspelt budget field is a 400, never silently ignored) and take
integers strictly (`true` or `1.5` as a budget is a 400).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Requests
class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, refusal...: not templated
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Strict):
    include_usage: StrictBool = False


class AnthropicThinking(_Strict):
    type: Literal["enabled", "disabled"]
    budget_tokens: StrictInt | None = None


Stop = StrictStr | Annotated[list[StrictStr], Field(max_length=16)] | None
Effort = Literal["none", "minimal", "low", "medium", "high"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]  # vLLM rejects 0
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class ThinkingFields(_Strict):
    """The budget fields shared by both endpoints (not OpenAI's)."""

    thinking_budget: StrictInt | None = None
    thinking_token_budget: StrictInt | None = None  # vLLM's name
    max_thinking_tokens: StrictInt | None = None  # NVIDIA NIM's name
    thinking: AnthropicThinking | None = None  # Anthropic's shape
    thinking_cut_window: StrictInt | None = None
    min_thinking_tokens: StrictInt | None = None
    termination_text: StrictStr | None = None


class ChatCompletionRequest(ThinkingFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    model: StrictStr | None = None
    frequency_penalty: Penalty = 0.0
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: StrictBool = False
    max_completion_tokens: StrictInt | None = None
    max_tokens: StrictInt | None = None
    metadata: dict[str, StrictStr] | None = None
    n: StrictInt = 1
    presence_penalty: Penalty = 0.0
    reasoning_effort: Effort | None = None
    seed: StrictInt | None = None
    service_tier: StrictStr | None = None
    stop: Stop = None
    store: StrictBool | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    top_p: TopP | None = None
    user: StrictStr | None = None
    # -- not OpenAI's: vLLM sampling extras ----------------------------------------------
    top_k: StrictInt | None = None
    min_p: Probability | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] | None = None
    # -- not OpenAI's: thinking switches (budget fields come from ThinkingFields) --------
    enable_thinking: StrictBool | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    # -- not OpenAI's: return prompt and completion token ids (as vLLM's field) ----------
    return_token_ids: StrictBool = False


class CompletionRequest(ThinkingFields):
    model: StrictStr | None = None
    prompt: StrictStr | Annotated[list[StrictInt], Field(min_length=1)]
    echo: StrictBool = False
    frequency_penalty: Penalty = 0.0
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    max_tokens: StrictInt | None = 16
    n: StrictInt = 1
    presence_penalty: Penalty = 0.0
    seed: StrictInt | None = None
    stop: Stop = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: TopP | None = None
    user: StrictStr | None = None
    # -- not OpenAI's: vLLM sampling extras ----------------------------------------------
    top_k: StrictInt | None = None
    min_p: Probability | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] | None = None
    # -- not OpenAI's: return prompt and completion token ids (as vLLM's field) ----------
    return_token_ids: StrictBool = False


# ---------------------------------------------------------------------------------------------
# Responses
class ThinkingStats(BaseModel):
    """Per-choice thinking report (not OpenAI's)."""

    tokens: int  # thinking tokens the model generated (forced tokens excluded)
    budget: int | None  # the effective budget after clamping; None = unlimited
    cut: bool  # whether the server cut thinking
    forced_tokens: int  # tokens the server forced (termination text, extension text)


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    # -- not OpenAI's: the reasoning text under DeepSeek/Qwen's and vLLM's names ----------
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    logprobs: None = None  # logprobs are not supported yet (requests asking get a 400)
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
    # -- not OpenAI's --
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: None = None  # logprobs are not supported yet (requests asking get a 400)
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
    logprobs: None = None
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


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "thinkbudget"
    max_model_len: int
    # -- not OpenAI's --
    thinking_profile: dict[str, Any] | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody
