"""`/tokenize`, `/detokenize`, `/version` and `/v1/models/{id}`: thinkbudget answers as
`vllm serve` does on the same tiny-model fixture (the comparison starts vLLM's server: slow),
and bad input is a 400 / 404 in OpenAI's format."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.tiny import tiny_server_args
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
CHAT = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "sum 3 5 2"},
    {"role": "assistant", "content": "10"},
    {"role": "user", "content": "and 4 4?"},
]
BODIES = [
    {"prompt": "sum 3 5 2 7 4"},
    {"prompt": "sum 3 5", "add_special_tokens": False, "return_token_strs": True},
    {"messages": CHAT},
    {"messages": CHAT, "add_generation_prompt": False, "return_token_strs": True},
]


def test_tokenize_detokenize_and_models(http, model):
    r = http.post("/tokenize", json={"prompt": "sum 3 5", "return_token_strs": True}).json()
    assert r["count"] == len(r["tokens"]) == len(r["token_strs"]) and r["max_model_len"] == 1024
    back = http.post("/detokenize", json={"tokens": r["tokens"]}).json()
    assert back["prompt"].endswith("sum 3 5")
    off = {"enable_thinking": False}
    chat = http.post("/tokenize", json={"messages": CHAT, "chat_template_kwargs": off}).json()
    # the chat count is the prompt a chat request sends
    sent = http.post(
        "/v1/chat/completions",
        json={"messages": CHAT, "max_tokens": 1, "chat_template_kwargs": off},
    ).json()
    assert chat["count"] == sent["usage"]["prompt_tokens"]
    assert http.get(f"/v1/models/{model}").json()["id"] == model
    missing = http.get("/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
    assert http.get("/version").json()["version"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tokenize", {}),
        ("/tokenize", {"prompt": "a", "messages": CHAT}),
        ("/tokenize", {"prompt": "a", "model": "nope"}),
        ("/detokenize", {"tokens": [-1]}),
        ("/detokenize", {"tokens": [1 << 40]}),
    ],
)
def test_bad_tokenize_input_is_a_4xx(http, path, body):
    r = http.post(path, json=body)
    assert r.status_code in (400, 404) and r.json()["error"]["message"], r.text


@pytest.mark.slow
def test_answers_as_vllm_serve_does(server, tiny_model):
    ours = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-key-123"})
    args = tiny_server_args(tiny_model)
    args[args.index("--log-level") : args.index("--log-level") + 2] = []
    with ServerProcess(
        [*args, "--uvicorn-log-level", "warning"],
        ROOT / ".cache" / "logs" / "test-tokenize-vllm.log",
        module="vllm.entrypoints.openai.api_server",
    ) as vllm_server:
        theirs = httpx.Client(base_url=vllm_server.url, timeout=60)
        for body in BODIES:
            a = ours.post("/tokenize", json=body).json()
            b = theirs.post("/tokenize", json=body).json()
            assert a == b, body
            d = {"tokens": a["tokens"]}
            assert (
                ours.post("/detokenize", json=d).json() == theirs.post("/detokenize", json=d).json()
            )
        assert ours.get("/version").json()["version"] == theirs.get("/version").json()["version"]
