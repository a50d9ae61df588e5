"""Chat templating without injection: text a user writes is text, never a control token.

A tokenizer turns any occurrence of an added token's string (`<|im_start|>`, `<think>`,
`<tool_call>`, ...) into that control token, wherever it stands; rendering a chat template and
encoding the result would let a message forge roles, open thinking or fake a tool call. So:
1. every control string inside message contents, tool results, tool-call arguments and tool
   definitions is replaced by a private-use placeholder (`\\ue000N\\ue001`) before rendering;
2. the template renders as usual (it may move, strip or drop contents as it likes);
3. the rendered text is encoded piece by piece: the template's own text with control tokens
   recognised, each placeholder as the plain text of its string (the tokenizer's model on
   its normalised, pre-tokenised text, bypassing the added-token matcher).
Thinking delimiters inside an assistant message of the history stay as written, since the
template itself parses them (Qwen3's strips the reasoning of earlier turns). The result: every
control token of the prompt was written by the template, so only delimiters the template wrote
count as thinking already open. `--allow-control-tokens-in-messages` restores plain rendering
(vLLM's behaviour).

Text that cannot be tokenised (a lone surrogate, a NUL) is a 400 naming where it was.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from typing import Any

from thinkbudget.serve.budgeting import RequestError

OPEN, CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{OPEN}(\\d+){CLOSE}")


def check_text(text: str, where: str) -> None:
    """A 400 for text no tokenizer can take."""
    if "\x00" in text:
        raise RequestError(f"{where} contains a NUL character (\\u0000)", where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            f"{where} is not valid Unicode text: a lone surrogate at position {exc.start} "
            "(\\ud800-\\udfff must come in pairs)",
            where,
        ) from None


class SafeTemplate:
    """Renders chat messages to token ids with control tokens only where the template
    wrote them."""

    def __init__(self, tokenizer: Any, keep: Iterable[str] = (), escape: bool = True) -> None:
        self.tok, self.backend, self.escape = tokenizer, tokenizer.backend_tokenizer, escape
        controls = {t.content for t in tokenizer.added_tokens_decoder.values()}
        self.controls = sorted(controls, key=len, reverse=True)
        self.keep_in_assistant = frozenset(keep)  # thinking delimiters the template parses
        pattern = "|".join(map(re.escape, self.controls)) or "(?!)"
        self.pattern = re.compile(pattern)
        self.index = {c: i for i, c in enumerate(self.controls)}

    # -- escaping ------------------------------------------------------------------------
    def _escape_text(self, text: str, where: str, keep: frozenset[str] = frozenset()) -> str:
        check_text(text, where)
        if not self.escape:
            return text

        def placeholder(m: re.Match) -> str:
            s = m.group(0)
            return s if s in keep else f"{OPEN}{self.index[s]}{CLOSE}"

        return self.pattern.sub(placeholder, text)

    def _escape(self, value: Any, where: str, keep: frozenset[str] = frozenset()) -> Any:
        if isinstance(value, str):
            return self._escape_text(value, where, keep)
        if isinstance(value, list):
            return [self._escape(v, f"{where}.{i}", keep) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self._escape(v, f"{where}.{k}", keep) for k, v in value.items()}
        return value

    def messages(self, messages: list[dict]) -> list[dict]:
        out = []
        for i, m in enumerate(messages):
            keep = self.keep_in_assistant if m.get("role") == "assistant" else frozenset()
            m = {
                k: v if k == "role" else self._escape(v, f"messages.{i}.{k}", keep)
                for k, v in m.items()
            }
            for call in m.get("tool_calls") or ():
                args = call.get("function", {}).get("arguments")
                if isinstance(args, str):  # as vLLM: templates expect the arguments parsed
                    with contextlib.suppress(json.JSONDecodeError):
                        call["function"]["arguments"] = json.loads(args)
            out.append(m)
        return out

    # -- rendering -----------------------------------------------------------------------
    def encode_as_text(self, text: str) -> list[int]:
        """Ids of `text` as plain text, even where it spells an added token."""
        b = self.backend
        if b.normalizer is not None:
            text = b.normalizer.normalize_str(text)
        pieces = b.pre_tokenizer.pre_tokenize_str(text) if b.pre_tokenizer else [(text, None)]
        return [t.id for piece, _ in pieces for t in b.model.tokenize(piece)]

    def encode(self, rendered: str) -> list[int]:
        ids: list[int] = []
        at = 0
        for m in _PLACEHOLDER.finditer(rendered):
            ids += self.backend.encode(rendered[at : m.start()], add_special_tokens=False).ids
            ids += self.encode_as_text(self.controls[int(m.group(1))])
            at = m.end()
        return ids + self.backend.encode(rendered[at:], add_special_tokens=False).ids

    def render(self, messages: list[dict], tools: list[dict] | None, kwargs: dict) -> list[int]:
        safe = self.messages(messages)
        safe_tools = self._escape(tools, "tools") if tools else None
        try:
            kwargs = {"add_generation_prompt": True, **kwargs}
            text = self.tok.apply_chat_template(safe, tools=safe_tools, tokenize=False, **kwargs)
        except Exception as exc:  # jinja raise_exception, bad roles, ...
            raise RequestError(
                f"the chat template rejected the messages: {exc}", "messages"
            ) from None
        return self.encode(text)
