"""The Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`),
translated into a chat request and rendered back from the one generation path.

Translation in:
- `system` (text or text blocks) -> a system message; `messages`: user text blocks -> a user
  message; `tool_result` blocks -> `tool` messages (before the user's text, as Anthropic
  orders them; `is_error` prefixes "Error: "); assistant `text`, `tool_use` and `thinking` /
  `redacted_thinking` blocks -> one assistant message with content, tool calls and
  `reasoning_content`; a last assistant message is a prefill the answer continues. A thinking
  block's `signature` (and `redacted_thinking.data`) is a
  sealed token (`serve.sealing`): the reasoning is restored from it; a token that does not
  open is dropped and logged; a block without one is taken as written, as chat's
  `reasoning_content` is. Images and documents are a 400 (a text model).
- `tools` -> function tools (`input_schema` as parameters); server tools (`type` other than
  `custom`) are left out and named in the ignored-fields header; `tool_choice` auto / any /
  tool / none -> auto / required / named / none; `disable_parallel_tool_use`.
- `thinking`: `enabled` + `budget_tokens` is an exact budget (below `max_tokens`, as
  Anthropic's; Claude's 1024 minimum is not imposed); `adaptive` / `between_tools` take the
  budget of `output_config.effort` from the server's effort table (`high` when unset);
  `disabled` turns thinking off. `display: "omitted"` sends thinking blocks with empty text
  and the signature. `output_config.format` -> structured output after thinking. The chat
  endpoint's budget fields (`thinking_budget_scope`, `thinking_cut_window`, ...) work too.
Rendering out: blocks in order (thinking, text, tool_use), `stop_reason`, `usage`, and the
`thinking` stats object of the chat endpoint; streams in Anthropic's events, with a `ping`
after `message_start` and whenever the stream has been silent for a while.
"""
