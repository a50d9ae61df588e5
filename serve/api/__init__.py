"""The wire protocols, one module each: a translation in, a rendering out, over one core.

- `chat`: OpenAI chat completions, and `prepare_chat`, the planning every chat-shaped
  protocol goes through (templating, tools, structured outputs, budgets, turn scope);
- `completions`: OpenAI completions (raw prompts);
- `responses`: the OpenAI Responses API, translated into a chat request;
- `messages`: the Anthropic Messages API, translated into a chat request.
`serve.answer` is the rendering-independent view of a generation they all render.
"""
