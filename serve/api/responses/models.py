"""The OpenAI Responses API's request models (`/docs` shows them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from thinkbudget.serve.protocol import Effort, SamplingExtras, ThinkingFields

ENCRYPTED = "reasoning.encrypted_content"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: StrictStr | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="json_schema")
    strict: StrictBool | None = None


class TextConfig(_Open):
    format: TextFormat | None = Field(None, description="constrains the answer (after thinking)")


class ReasoningConfig(_Open):
    effort: Effort | None = Field(None, description="none disables thinking; others: budgets")
    summary: Literal["auto", "concise", "detailed"] | None = Field(
        None, description="accepted; no summariser runs: reasoning comes whole in `content`"
    )


class ResponsesRequest(ThinkingFields, SamplingExtras):
    model: StrictStr | None = None
    input: StrictStr | list[dict[str, Any]] = Field(description="text, or input items")
    instructions: StrictStr | None = Field(None, description="the system message")
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    include: list[StrictStr] | None = Field(
        None, description="reasoning.encrypted_content: reasoning items carry a sealed token"
    )
    store: StrictBool = Field(True, description="keep the response for previous_response_id")
    previous_response_id: StrictStr | None = None
    background: StrictBool | None = None
    conversation: Any = None
    stream: StrictBool = False
