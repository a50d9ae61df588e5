"""What a request leaves out comes from the model's generation_config, as `vllm serve` applies
it (`--generation-config auto`), with `--override-generation-config` on top: a tiny-model copy
whose generation_config.json says `top_k: 1` samples greedily unless a request says otherwise,
and `max_new_tokens` (overridden to 5) is the default max_tokens, on every endpoint. The same
server takes `--chat-template FILE` in place of the tokenizer's."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from harness.tiny import tiny_server_args
from thinkbudget.launch import ServerProcess

PROMPT = "The weather today is"


@pytest.fixture(scope="module")
def greedy_server(tiny_model, tmp_path_factory):
    model = tmp_path_factory.mktemp("greedy") / "model"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "generation_config.json").read_text())
    config.update(top_k=1, max_new_tokens=9)
    (model / "generation_config.json").write_text(json.dumps(config))
    override = json.dumps({"max_new_tokens": 5})
    template = model.parent / "template.jinja"  # the model's template behind a marker
    template.write_text("house rules\n" + (model / "chat_template.jinja").read_text())
    args = tiny_server_args(
        model, "--override-generation-config", override, "--chat-template", str(template)
    )
    with ServerProcess(args, model.parent / "server.log") as server:
        yield server


def complete(server, **fields) -> dict:
    body = {"prompt": PROMPT, "ignore_eos": True, **fields}
    r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_left_out_sampling_fields_come_from_the_model(greedy_server):
    plain = complete(greedy_server)  # completions' own default max_tokens (16), capped
    assert plain["usage"]["completion_tokens"] == 5
    greedy = complete(greedy_server, temperature=0, max_tokens=5)
    # top_k 1 from generation_config.json: every unseeded sample is the greedy one
    text = greedy["choices"][0]["text"]
    assert [complete(greedy_server)["choices"][0]["text"] for _ in range(3)] == [text] * 3
    assert plain["choices"][0]["text"] == text
    # a request's own value wins over the model's default
    free = {complete(greedy_server, top_k=-1, seed=s)["choices"][0]["text"] for s in range(4)}
    assert len(free) > 1
    # as vLLM: --override-generation-config's max_new_tokens caps a request's max_tokens too
    assert complete(greedy_server, max_tokens=7)["usage"]["completion_tokens"] == 5


def test_chat_and_messages_take_the_same_defaults(greedy_server):
    chat = {"messages": [{"role": "user", "content": PROMPT}], "ignore_eos": True}
    r = httpx.post(f"{greedy_server.url}/v1/chat/completions", json=chat, timeout=60).json()
    assert r["usage"]["completion_tokens"] == 5
    greedy = {**chat, "temperature": 0}
    g = httpx.post(f"{greedy_server.url}/v1/chat/completions", json=greedy, timeout=60).json()
    assert r["choices"][0]["message"] == g["choices"][0]["message"]
    model = httpx.get(f"{greedy_server.url}/v1/models").json()["data"][0]["id"]
    msg = {"model": model, "max_tokens": 5, "messages": chat["messages"], "ignore_eos": True}
    a = httpx.post(f"{greedy_server.url}/v1/messages", json=msg, timeout=60).json()
    b = httpx.post(f"{greedy_server.url}/v1/messages", json={**msg, "temperature": 0}, timeout=60)
    assert a["content"] == b.json()["content"] and a["usage"]["output_tokens"] == 5


def test_chat_template_flag_replaces_the_tokenizers(greedy_server):
    body = {"messages": [{"role": "user", "content": PROMPT}]}
    ids = httpx.post(f"{greedy_server.url}/tokenize", json=body, timeout=60).json()["tokens"]
    text = httpx.post(f"{greedy_server.url}/detokenize", json={"tokens": ids}, timeout=60)
    assert text.json()["prompt"].startswith("house rules<|im_start|>user")  # {%- trims
