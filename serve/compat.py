"""Fields a request sends that the server does not act on: tolerated like vLLM, except where
silence would hurt.

OpenAI and vLLM request fields that thinkbudget does not implement are accepted and ignored;
the response names them in the `x-thinkbudget-ignored-fields` header and the log says so. An
unknown field that looks like a thinking field (its name mentions think, budget or reason,
or it is within edit distance 2 of a field the server knows) is a 400: a misspelt budget is
never silently ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from thinkbudget.serve.budgeting import RequestError

log = logging.getLogger("thinkbudget")
HEADER = "x-thinkbudget-ignored-fields"

# Request fields of OpenAI's and vLLM's APIs that the server accepts without acting on them.
IGNORED = frozenset(
    {
        # OpenAI
        "audio",
        "function_call",
        "functions",
        "metadata",
        "modalities",
        "prediction",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "store",
        "verbosity",
        "web_search_options",
        "suffix",
        "best_of",
        # vLLM
        "use_beam_search",
        "length_penalty",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "prompt_logprobs",
        "allowed_token_ids",
        "bad_words",
        "echo",
        "documents",
        "chat_template",
        "mm_processor_kwargs",
        "structured_outputs",
        "priority",
        "request_id",
        "cache_salt",
        "kv_transfer_params",
        "vllm_xargs",
        "return_tokens_as_token_ids",
        "add_special_tokens",
        "logits_processors",
        "media_io_kwargs",
        "repetition_detection",
        "add_prefix_space",
    }
)
THINKING_WORDS = ("think", "budget", "reason")


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def nearest(name: str, known: set[str]) -> str | None:
    best = min(known, key=lambda k: edit_distance(name, k), default=None)
    return best if best is not None and edit_distance(name, best) <= 2 else None


def ignored_fields(req: BaseModel, tolerated: frozenset[str] = IGNORED) -> list[str]:
    """The unknown fields of `req` to ignore (`tolerated`: the protocol's fields the server
    accepts without acting on them); raises for those that must not be ignored."""
    extra: dict[str, Any] = req.model_extra or {}
    if not extra:
        return []
    known = set(type(req).model_fields) | tolerated
    for name in extra:
        if name in tolerated:
            continue
        close = nearest(name, known)
        if any(w in name.lower() for w in THINKING_WORDS) or close:
            hint = f"; did you mean {close!r}?" if close else " (see /docs)"
            raise RequestError(f"unknown field {name!r}{hint}", name)
    names = sorted(extra)
    log.info("ignored request fields: %s", ", ".join(names))
    return names
