"""Fields a request sends that the server does not act on: tolerated like vLLM, except where
silence would hurt.

OpenAI and vLLM request fields that change nothing a client sees (metadata, store, ...) are
accepted and ignored; the response names them in the `x-thinkbudget-ignored-fields` header
and the log says so. Fields vLLM acts on that thinkbudget does not (`REFUSED`) are accepted
at their neutral values only, a 400 naming them otherwise. vLLM's former `guided_*` names are
read as `structured_outputs` (`structured_outputs_of`). An
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

# Request fields of OpenAI's and vLLM's APIs that change nothing a client sees here: accepted,
# named in the header.
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
        # vLLM
        "documents",
        "mm_processor_kwargs",
        "media_io_kwargs",
        "request_id",
        "kv_transfer_params",
        "vllm_xargs",
        "guided_decoding_backend",
        "add_special_tokens",  # chat templates carry their special tokens; prompts are raw
        "add_prefix_space",
    }
)

# Fields vLLM acts on that thinkbudget does not: accepted at their neutral values (clients send
# those), a 400 naming the field otherwise: never a silent no-op that changes the output.
REFUSED: dict[str, tuple[Any, ...]] = {
    "suffix": (None, ""),
    "best_of": (None, 1),
    "use_beam_search": (False, None),
    "length_penalty": (1.0, None),
    "early_stopping": (False, None),
    "include_stop_str_in_output": (False, None),
    "skip_special_tokens": (True, None),
    "spaces_between_special_tokens": (True, None),
    "truncate_prompt_tokens": (None,),
    "prompt_logprobs": (None,),
    "echo": (False, None),  # on chat (the completions endpoint acts on it)
    "chat_template": (None,),
    "return_tokens_as_token_ids": (False, None),
    "logits_processors": (None, []),
    "repetition_detection": (None,),
    "watermarking": (None, False),
}

# vLLM's former names of the structured_outputs constraints
GUIDED = {
    "guided_json": "json",
    "guided_regex": "regex",
    "guided_choice": "choice",
    "guided_grammar": "grammar",
    "guided_whitespace_pattern": "whitespace_pattern",
}
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
    known = set(type(req).model_fields) | tolerated | set(REFUSED) | set(GUIDED)
    for name, value in extra.items():
        if name in REFUSED and value not in REFUSED[name]:
            raise RequestError(
                f"{name}={value!r} is not supported by this server (vLLM's server acts on it; "
                "thinkbudget does not yet): leave it out or at its default",
                name,
            )
        if name in tolerated or name in REFUSED or name in GUIDED:
            continue
        close = nearest(name, known)
        if any(w in name.lower() for w in THINKING_WORDS) or close:
            hint = f"; did you mean {close!r}?" if close else " (see /docs)"
            raise RequestError(f"unknown field {name!r}{hint}", name)
    names = sorted(n for n in extra if n not in GUIDED)
    if not names:
        return []
    log.info("ignored request fields: %s", ", ".join(names))
    return names


def structured_outputs_of(req: BaseModel) -> dict[str, Any] | None:
    """The request's vLLM answer constraint: `structured_outputs`, or the former `guided_*`
    fields (one of the two spellings)."""
    extra: dict[str, Any] = req.model_extra or {}
    guided = {GUIDED[k]: v for k, v in extra.items() if k in GUIDED and v is not None}
    given = getattr(req, "structured_outputs", None)
    if guided and given:
        raise RequestError("send structured_outputs or guided_* fields, not both", "guided_json")
    return given or guided or None
