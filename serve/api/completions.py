"""OpenAI completions (`POST /v1/completions`): a raw interface. Prompts (text, token ids, or
a list of either) are encoded as given, special tokens included; each choice's `text` is the
raw continuation, delimiters included. Budgets act as on chat."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from thinkbudget.serve.api.chat import ERRORS, error_event
from thinkbudget.serve.api.common import (
    check_model,
    config_of,
    handle_of,
    plan,
    stream_usage,
    structured_settings,
    unless_disconnected,
    with_header,
)
from thinkbudget.serve.compat import ignored_fields
from thinkbudget.serve.generation import Generation
from thinkbudget.serve.logprobs import completion_logprobs
from thinkbudget.serve.protocol import Completion, CompletionChoice, CompletionRequest
from thinkbudget.serve.sse import data, sse
from thinkbudget.serve.templating import check_text
from thinkbudget.serve.tools import answer_constraint

router = APIRouter()


def prompts_of(req: CompletionRequest) -> list[str | list[int]]:
    p = req.prompt
    if isinstance(p, str) or (p and isinstance(p[0], int)):
        return [p]
    return list(p)


@router.post("/v1/completions", response_model=Completion, responses=ERRORS)
async def completions(req: CompletionRequest, request: Request, response: Response):
    h, config = handle_of(request), config_of(request)
    ignored = ignored_fields(req)
    check_model(request, req.model)
    settings, _ = plan(request, req)
    structured = answer_constraint(req)
    if structured is not None:
        settings = structured_settings(h, settings)
    preps = []
    for i, prompt in enumerate(prompts_of(req)):
        if isinstance(prompt, str):
            check_text(prompt, "prompt" if isinstance(req.prompt, str) else f"prompt.{i}")
            prompt = await asyncio.to_thread(h.encode, prompt)
        preps.append(
            await h.prepare(
                prompt_ids=list(prompt),
                chat=None,
                settings=settings,
                req=req,
                max_tokens=req.max_tokens,
                prefix="cmpl",
                structured=structured,
                logprobs=req.logprobs,
            )
        )
    for p in preps[1:]:
        p.request_id = preps[0].request_id
    gen = h.generation(preps, "completions", raw=True)
    echo = [h.tokenizer.decode(p.prompt_ids) if req.echo else "" for p in preps]
    if req.stream:
        usage = stream_usage(req, config)
        return with_header(sse(completion_chunks(gen, config.model_name, usage, echo)), ignored)
    with_header(response, ignored)
    return await unless_disconnected(request, completion_response(gen, config.model_name, echo))


def _completion_choice(
    gen: Generation, i: int, text: str, done: bool, entries: list | None, offset: int = 0
):
    """A completion choice; `entries`: the logprob entries of `text`'s tokens, if asked."""
    choice = gen.choices[i]
    logprobs = None
    if choice.prep.logprobs is not None and entries is not None:
        logprobs = completion_logprobs(entries, offset)
    return CompletionChoice(
        index=i,
        text=text,
        logprobs=logprobs,
        finish_reason=choice.tracker.finish_reason if done else None,
        thinking=gen.stats(i) if done else None,
        **(gen.ids(i) if done else {}),
    )


async def completion_response(gen: Generation, model: str, echo: list[str]):
    n = gen.preps[0].n
    texts = [[echo[i // n]] for i in range(len(gen.choices))]
    async for d in gen.events():
        texts[d.index].append(d.content)
    choices = [
        _completion_choice(gen, i, "".join(t), True, gen.choices[i].logprobs, len(echo[i // n]))
        for i, t in enumerate(texts)
    ]
    request_id = gen.preps[0].request_id
    return Completion(id=request_id, model=model, choices=choices, usage=gen.usage())


async def completion_chunks(gen: Generation, model: str, usage: bool, echo: list[str]):
    head = {"id": gen.preps[0].request_id, "created": int(time.time()), "model": model}
    n = gen.preps[0].n
    try:
        for i in range(len(gen.choices)):
            if echo[i // n]:
                choice = CompletionChoice(index=i, text=echo[i // n], finish_reason=None)
                yield data(Completion(**head, choices=[choice]))
        async for d in gen.events():
            if d.content or d.done or d.logprobs:
                choice = _completion_choice(gen, d.index, d.content, d.done, d.logprobs)
                yield data(Completion(**head, choices=[choice]))
        if usage:
            yield data(Completion(**head, choices=[], usage=gen.usage()))
    except Exception as exc:  # after the 200 header: report in-band, then end the stream
        yield error_event(exc)
    yield "data: [DONE]\n\n"
