"""The independent oracle of `bench.exactness`: it reads only a choice's token ids and the
tokenizer (never `budget/`), walks the completion and names every broken invariant (the
list is in `bench.exactness`'s docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TERM_TEXT = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on "
    "the thinking directly now.\n"
)
TERM_SENTENCE = TERM_TEXT.strip()
RESERVE = 32  # the server's default --answer-reserve


# Each family's delimiters as text (the oracle's own table, not `budget/`'s): start, end,
# answer separator, the token that starts a tool call.
FAMILY_TEXTS = {
    "qwen3": ("<think>", "</think>", "\n\n", "<tool_call>"),
    "qwen3-thinking": ("<think>", "</think>", "\n\n", "<tool_call>"),
    "deepseek-r1": ("<think>", "</think>", "\n\n", "<｜tool▁calls▁begin｜>"),
    "gpt-oss": (
        "<|channel|>analysis<|message|>",
        "<|end|><|start|>assistant<|channel|>final<|message|>",
        "",
        None,
    ),
}


@dataclass
class Oracle:
    start: tuple[int, ...]
    end: tuple[int, ...]
    term: tuple[int, ...]  # termination text + end delimiter
    sep: int  # tokens of the separator forced after the end delimiter
    ext: tuple[int, ...]
    tok: Any
    tool: int | None = None  # a token that starts a tool call (closes thinking)

    @classmethod
    def from_tokenizer(cls, tok: Any, family: str = "qwen3") -> Oracle:
        start_text, end_text, sep_text, tool_text = FAMILY_TEXTS[family]

        def ids(text: str) -> tuple[int, ...]:
            return tuple(tok.encode(text, add_special_tokens=False))

        start, end = ids(start_text), ids(end_text)
        tool = ids(tool_text) if tool_text else ()
        return cls(
            start,
            end,
            ids(TERM_TEXT) + end,
            len(ids(sep_text)),
            ids("Wait,"),
            tok,
            tool[0] if len(tool) == 1 else None,
        )

    def prompt_open(self, prompt: list[int]) -> int | None:
        for stop in range(len(prompt), 0, -1):
            if tuple(prompt[max(0, stop - len(self.end)) : stop]) == self.end:
                return None
            if tuple(prompt[max(0, stop - len(self.start)) : stop]) == self.start:
                return len(prompt) - stop
        return None

    def _at(self, ids: list[int], i: int, seq: tuple[int, ...]) -> bool:
        return tuple(ids[i : i + len(seq)]) == seq

    def scan(self, ids: list[int], opened: int | None, eff: int, window: int, minimum: int):
        """Walk the completion: (thinking tokens spent, cut, cuts, answer tokens: the
        oracle's own split, flags: reopened after a cut, early end below the minimum, an end
        delimiter outside thinking, thinking or a cut after a tool call started). A
        multi-token end that begins within its own length of the budget may have been
        completed by the server (a cut while the model was writing it): it counts as a cut."""
        thinking, spent, cut, cuts = opened is not None, opened or 0, False, 0
        flags: set[str] = set()
        tool_at: int | None = None
        answer: list[int] = []
        i = 0
        while i < len(ids):
            t = ids[i]
            if t == self.tool and tool_at is None:
                tool_at, thinking = i, False
            elif thinking and self._at(ids, i, self.term):
                thinking = False
                i += len(self.term)
                if spent >= eff - window:  # where the server may cut
                    cuts, cut = cuts + 1, True
                else:  # the model wrote the text itself, far from the budget
                    spent += len(self.term) - len(self.end)
                continue
            elif thinking and self._at(ids, i, self.end):
                thinking = False
                i += len(self.end)
                if len(self.end) > 1 and spent + len(self.end) - 1 >= eff:
                    cuts, cut = cuts + 1, True  # possibly completed by the server
                elif spent < minimum and eff - spent >= len(self.ext):
                    flags.add("early_end")
                continue
            elif thinking:
                spent += 1
            elif self._at(ids, i, self.start):
                thinking = True
                i += len(self.start)
                flags |= {"reopened"} if cut else set()
                flags |= {"cut_in_tool_call"} if tool_at is not None else set()
                continue
            elif self._at(ids, i, self.end):
                flags.add("stray_end")
                i += len(self.end)
                continue
            if not thinking:
                answer.append(t)
            i += 1
        return spent, cut, cuts, answer, flags

    def thought(self, ids: list[int], opened: int | None) -> bool:
        """Whether thinking was open in the prompt or the model opened it."""
        size = len(self.start)
        return opened is not None or any(
            tuple(ids[i : i + size]) == self.start for i in range(len(ids))
        )

    def conforms(self, req: dict, choice: dict, content: str) -> bool:
        """The answer obeys the request's vLLM constraint: a `structured_outputs` choice or
        regex (when the answer ended by itself); no `bad_words` token sequence anywhere in
        what was generated (thinking too, as vLLM applies it)."""
        ids = choice["token_ids"]
        constraint = req.get("structured_outputs") or {}
        if choice["finish_reason"] == "stop" and "choice" in constraint:
            return content.strip() in constraint["choice"]
        if choice["finish_reason"] == "stop" and "regex" in constraint:
            return re.fullmatch(constraint["regex"], content.strip()) is not None
        for word in req.get("bad_words") or ():
            for variant in {word, " " + word}:
                banned = tuple(self.tok.encode(variant, add_special_tokens=False))
                if any(tuple(ids[i : i + len(banned)]) == banned for i in range(len(ids))):
                    return False
        return True

    def check(
        self, req: dict, choice: dict, text: str, chat: bool
    ) -> tuple[list[str], float | None]:
        """Violations for one choice, and spent / effective budget. `text` is the chat
        answer, or the raw completion text."""
        prompt, ids = choice["prompt_token_ids"], choice["token_ids"]
        budget, minimum = req["thinking_budget"], req.get("min_thinking_tokens", 0)
        window = req.get("thinking_cut_window", 0)
        structured = bool(
            req.get("response_format")
            or req.get("structured_outputs")
            or req.get("tool_choice") not in (None, "auto")
        )
        sep = 0 if structured else self.sep  # a grammar answers: the cut leaves the separator
        fit = req["max_tokens"] - 1 - (len(self.term) + sep) - RESERVE
        eff = min(budget, fit)
        opened = self.prompt_open(prompt)
        spent, cut, cuts, answer, flags = self.scan(ids, opened, eff, window, minimum)
        violations = sorted(flags - {"early_end"})
        if spent > max(eff, opened or 0):
            violations.append("over_budget")
        if cuts > 1:
            violations.append("termination_count")
        if chat:
            expected = self.tok.decode(answer, skip_special_tokens=True).strip()
        else:
            expected = self.tok.decode(ids, skip_special_tokens=True)
        if text is None:  # tool calls the server re-serialised
            violations.append("info_split_unchecked_tool_call")
            text = expected
        if text.strip() != expected.strip():
            violations.append("split_mismatch")
        content = text if chat else self.tok.decode(answer, skip_special_tokens=True)
        if TERM_SENTENCE in content and "split_mismatch" not in violations:
            violations.append("info_model_wrote_termination_text_in_answer")
        if not content.strip() and choice["finish_reason"] == "length":
            violations.append("empty_answer_length")
        if "early_end" in flags:
            violations.append("early_end")
        if chat and not self.conforms(req, choice, content):
            violations.append("grammar" if self.thought(ids, opened) else "grammar_never_opened")
        report = choice.get("thinking") or {}
        if (
            report.get("cut") != cut
            or report.get("budget") != eff
            or report.get("tokens", 0) > spent - (opened or 0)
        ):
            violations.append("report_mismatch")
        ratio = spent / eff if eff and (opened or 0) <= eff else None
        return violations, ratio
