"""The independent oracle of `bench.exactness`: it reads only a choice's token ids and the
tokenizer (never `budget/`), walks the completion and names every broken invariant (the
list is in `bench.exactness`'s docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TERM_TEXT = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on "
    "the thinking directly now.\n"
)
TERM_SENTENCE = TERM_TEXT.strip()
RESERVE = 32  # the server's default --answer-reserve


@dataclass
class Oracle:
    start: int
    end: int
    term: tuple[int, ...]  # termination text + end delimiter
    sep: int  # tokens of the "\n\n" forced after the end delimiter
    ext: tuple[int, ...]
    tok: Any
    tool: int | None = None  # a token that starts a tool call (closes thinking)

    @classmethod
    def from_tokenizer(cls, tok: Any) -> Oracle:
        (start,) = tok.encode("<think>", add_special_tokens=False)
        (end,) = tok.encode("</think>", add_special_tokens=False)
        term = tuple(tok.encode(TERM_TEXT, add_special_tokens=False)) + (end,)
        sep = len(tok.encode("\n\n", add_special_tokens=False))
        ext = tuple(tok.encode("Wait,", add_special_tokens=False))
        tool = tok.encode("<tool_call>", add_special_tokens=False)
        return cls(start, end, term, sep, ext, tok, tool[0] if len(tool) == 1 else None)

    def prompt_open(self, prompt: list[int]) -> int | None:
        for back, t in enumerate(reversed(prompt)):
            if t == self.end:
                return None
            if t == self.start:
                return back
        return None

    def scan(self, ids: list[int], opened: int | None, eff: int, window: int, minimum: int):
        """Walk the completion: (thinking tokens spent, cut, cuts, answer tokens: the
        oracle's own split, flags: reopened after a cut, early end below the minimum, an end
        delimiter outside thinking, thinking or a cut after a tool call started)."""
        thinking, spent, cut, cuts = opened is not None, opened or 0, False, 0
        flags: set[str] = set()
        tool_at: int | None = None
        answer: list[int] = []
        i = 0
        while i < len(ids):
            t = ids[i]
            if t == self.tool and tool_at is None:
                tool_at, thinking = i, False
            elif thinking and tuple(ids[i : i + len(self.term)]) == self.term:
                thinking = False
                i += len(self.term)
                if spent >= eff - window:  # where the server may cut
                    cuts, cut = cuts + 1, True
                else:  # the model wrote the text itself, far from the budget
                    spent += len(self.term) - 1
                continue
            elif thinking and t == self.end:
                thinking = False
                if spent < minimum and eff - spent >= len(self.ext):
                    flags.add("early_end")
            elif thinking:
                spent += 1
            elif t == self.start:
                thinking = True
                flags |= {"reopened"} if cut else set()
                flags |= {"cut_in_tool_call"} if tool_at is not None else set()
            elif t == self.end:
                flags.add("stray_end")
            if not thinking and t not in (self.start, self.end):
                answer.append(t)
            i += 1
        return spent, cut, cuts, answer, flags

    def check(
        self, req: dict, choice: dict, text: str, chat: bool
    ) -> tuple[list[str], float | None]:
        """Violations for one choice, and spent / effective budget. `text` is the chat
        answer, or the raw completion text."""
        prompt, ids = choice["prompt_token_ids"], choice["token_ids"]
        budget, minimum = req["thinking_budget"], req.get("min_thinking_tokens", 0)
        window = req.get("thinking_cut_window", 0)
        structured = bool(
            req.get("response_format") or req.get("tool_choice") not in (None, "auto")
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
        content = text if chat else answer_of(text, req)
        if TERM_SENTENCE in content and "split_mismatch" not in violations:
            violations.append("info_model_wrote_termination_text_in_answer")
        if not content.strip() and choice["finish_reason"] == "length":
            violations.append("empty_answer_length")
        if "early_end" in flags:
            violations.append("early_end")
        report = choice.get("thinking") or {}
        if (
            report.get("cut") != cut
            or report.get("budget") != eff
            or report.get("tokens", 0) > spent - (opened or 0)
        ):
            violations.append("report_mismatch")
        ratio = spent / eff if eff and (opened or 0) <= eff else None
        return violations, ratio


def answer_of(text: str, body: dict) -> str:
    """The answer part of a raw completion: after the last end delimiter, if thinking was
    opened (in the prompt or the text); the text itself otherwise."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    opened = body["prompt"].rfind("<think>") > body["prompt"].rfind("</think>")
    return "" if opened or "<think>" in text else text
