"""The OpenAI Responses API (`POST /v1/responses`, `GET` / `DELETE /v1/responses/{id}`),
translated into a chat request and rendered back from the one generation path.

Translation in:
- `instructions` -> the system message; `input` text, or items: `message` (user / system /
  developer / assistant; `input_text` / `output_text` parts; developer is a system message),
  `function_call` -> an assistant tool call, `function_call_output` -> a `tool` message,
  `reasoning` -> the `reasoning_content` of the next assistant message: restored from its
  `encrypted_content` (a sealed token, `serve.sealing`; one that does not open is dropped and
  logged), else its `reasoning_text` content as written. Images and files are a 400.
- `tools`: `function` tools, and `namespace` groups flattened to `NAMESPACE.NAME` (calls come
  back with `namespace` set); hosted tools the server cannot run (web_search, file_search,
  code_interpreter, computer use, mcp, image_generation, shell, ...) are left out of the
  prompt and named in the ignored-fields header; `custom` tools are a 400.
  `tool_choice` (auto / none / required / a function / allowed_tools), `parallel_tool_calls`.
- `max_output_tokens`, `temperature`, `top_p`, `text.format` -> structured output after
  thinking; `reasoning.effort` (none .. xhigh) -> the server's effort table, exact; the chat
  endpoint's budget fields and aliases. `reasoning.summary`: no summariser runs, so every
  reasoning item's `summary` is empty and its full text is in `content` (`reasoning_text`).
- `store` (default true) / `previous_response_id`: a bounded in-memory store
  (`--responses-store-size`, least recently used dropped); `background` and `conversation`
  are a 400.
Rendering out: output items reasoning, message, function_call; `status` completed or
incomplete (`incomplete_details.reason: max_output_tokens`); usage with reasoning tokens; the
chat endpoint's `thinking` stats. Streams follow OpenAI's event sequence, each event with a
`sequence_number`, ending with response.completed, response.incomplete or response.failed.
"""
