"""The Anthropic Messages API's request and error models (`/docs` shows them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from thinkbudget.serve.protocol import SamplingExtras, ThinkingFields


class ErrorDetail(BaseModel):
    type: str
    message: str


class MessagesError(BaseModel):
    type: Literal["error"] = "error"
    error: ErrorDetail


ERRORS = {code: {"model": MessagesError} for code in (400, 401, 404, 413, 429)}


class _Block(BaseModel):
    model_config = ConfigDict(extra="allow")  # cache_control, citations, ...


class TextBlock(_Block):
    type: Literal["text"]
    text: StrictStr


class ImageBlock(_Block):
    type: Literal["image", "document"]


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any] = Field(description="the call's arguments")


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[TextBlock | ImageBlock] | None = None
    is_error: StrictBool | None = None


class ThinkingBlock(_Block):
    type: Literal["thinking"]
    thinking: StrictStr = Field(description="the reasoning text (empty when omitted)")
    signature: StrictStr | None = Field(None, description="sealed reasoning (restored from it)")


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"]
    data: StrictStr = Field(description="sealed reasoning")


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class AnthropicMessage(_Block):
    role: Literal["user", "assistant"]
    content: StrictStr | list[Block]


class AnthropicTool(_Block):
    name: StrictStr
    type: StrictStr | None = Field(None, description="custom (or absent); others: server tools")
    description: StrictStr | None = None
    input_schema: dict[str, Any] | None = None


class AnthropicToolChoice(_Block):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = Field(None, description="the tool to call (type: tool)")
    disable_parallel_tool_use: StrictBool | None = None


class OutputFormat(_Block):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", description="the answer's JSON schema")


class OutputConfig(_Block):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = Field(
        None, description="with adaptive thinking: the budget of this level of the effort table"
    )
    format: OutputFormat | None = None


class MessagesRequest(ThinkingFields, SamplingExtras):
    model: StrictStr
    messages: Annotated[list[AnthropicMessage], Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)]
    system: StrictStr | list[TextBlock] | None = None
    stop_sequences: Annotated[list[StrictStr], Field(max_length=16)] | None = None
    stream: StrictBool = False
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    output_config: OutputConfig | None = None


class CountTokensRequest(MessagesRequest):
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
