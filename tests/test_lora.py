"""A LoRA adapter the trainer writes is served over its base as it is (`--enable-lora
--lora-modules NAME=FOLDER`): at temperature 0 it answers as its merged export does, budgets
exact, and its own thinking_profile.json (here a budget prompt the base lacks) applies to its
requests only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.tiny import EAGER
from tests.test_grpo import grpo_config
from thinkbudget.launch import ServerProcess
from thinkbudget.train_fusion.config import LoraSettings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # a LoRA GRPO run and two servers: about 3 minutes here
SMALL = ["--kv-cache-memory-bytes", str(64 << 20), "--max-model-len", "512"]
SMALL += ["--log-level", "warning", EAGER]
STATED = "Think for {budget} tokens."
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def adapter(micro) -> dict[str, Path]:
    """Two GRPO steps with LoRA on the micro SFT model, and its merged export."""
    from thinkbudget.train_fusion import grpo

    cfg = grpo_config(
        micro,
        "grpo-lora",
        save_steps=2,
        learning_rate=2e-2,
        lora=LoraSettings(r=8, alpha=16),
        budget_prompt=STATED,
    )
    final = grpo.run(cfg)
    assert (final / "adapter_config.json").is_file()
    merged = micro["root"] / "grpo-lora-merged"
    export = [sys.executable, "-m", "thinkbudget", "train", "export"]
    subprocess.run(
        [*export, "--model", str(final), "--output_dir", str(merged)], check=True, cwd=ROOT
    )
    return {"final": final, "merged": merged, "base": micro["sft"] / "final"}


def ask(server, model: str, content: str, budget: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 96,
        "thinking_budget": budget,
        "return_token_ids": True,
        "logprobs": True,
        "top_logprobs": 2,
    }
    r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def same_up_to_a_tie(a: dict, b: dict) -> None:
    """Greedy tokens equal, except that after a near tie (the two best tokens within 0.05
    logprob on either side: LoRA applied vs merged weights round differently) the two paths
    may part."""
    ids_a, ids_b = a["token_ids"], b["token_ids"]
    for i, (x, y) in enumerate(zip(ids_a, ids_b)):
        if x != y:
            for side in (a, b):
                top = side["logprobs"]["content"][i]["top_logprobs"]
                assert abs(top[0]["logprob"] - top[1]["logprob"]) < 0.05, (i, top)
            assert i > a["thinking"]["tokens"]  # the thinking and the cut are the same
            return
    assert len(ids_a) == len(ids_b)


def test_adapter_served_over_its_base_answers_as_its_merged_export(adapter, micro):
    lines = (micro["data"] / "heldout.jsonl").read_text().splitlines()[:4]
    questions = [json.loads(line)["question"] for line in lines]
    lora = [*SMALL, "--enable-lora", "--max-lora-rank", "8"]
    lora += ["--lora-modules", f"tuned={adapter['final']}", "--served-model-name", "base"]
    logs = micro["root"] / "lora-logs"
    with ServerProcess(["--model", str(adapter["base"]), *lora], logs / "lora.log") as over:
        served = [ask(over, "tuned", q, 4) for q in questions]
        plain = ask(over, "base", questions[0], 4)
        cards = httpx.get(over.url + "/v1/models").json()["data"]
    with ServerProcess(["--model", str(adapter["merged"]), *SMALL], logs / "merged.log") as m:
        name = httpx.get(m.url + "/v1/models").json()["data"][0]["id"]
        merged = [ask(m, name, q, 4) for q in questions]
    for a, b in zip(served, merged):
        assert a["choices"][0]["thinking"]["tokens"] <= 4
        same_up_to_a_tie(a["choices"][0], b["choices"][0])
    # the adapter's profile states the budget (its prompt is longer), the base's does not
    assert served[0]["usage"]["prompt_tokens"] == merged[0]["usage"]["prompt_tokens"]
    assert served[0]["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]
    assert [c["id"] for c in cards] == ["base", "tuned"]
    assert cards[1]["parent"] == "base" and cards[1]["thinking_profile"]["budget_prompt"] == STATED


def test_adapters_load_and_unload_at_run_time(adapter, micro):
    """With vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING, adapters come and go while serving
    (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`), their profile with them."""
    question = json.loads((micro["data"] / "heldout.jsonl").read_text().splitlines()[0])
    flags = ["--model", str(adapter["base"]), *SMALL, "--enable-lora", "--max-lora-rank", "8"]
    flags += ["--served-model-name", "base"]
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    log = micro["root"] / "lora-logs" / "runtime.log"
    with ServerProcess(flags, log, env=env) as srv:

        def post(path: str, **body) -> httpx.Response:
            return httpx.post(srv.url + path, json=body, timeout=120)

        assert post("/v1/chat/completions", model="tuned", messages=HI).status_code == 404
        load = {"lora_name": "tuned", "lora_path": str(adapter["final"])}
        assert post("/v1/load_lora_adapter", **load).status_code == 200
        assert post("/v1/load_lora_adapter", **load).status_code == 400  # already loaded
        missing = post("/v1/load_lora_adapter", lora_name="x", lora_path="/nowhere")
        assert missing.status_code == 404 and "does not exist" in missing.text
        ids = [c["id"] for c in httpx.get(srv.url + "/v1/models").json()["data"]]
        assert ids == ["base", "tuned"]
        tuned = ask(srv, "tuned", question["question"], 4)
        base = ask(srv, "base", question["question"], 4)
        assert tuned["choices"][0]["thinking"]["tokens"] <= 4
        # the adapter's own profile states the budget: its prompt is the longer one
        assert tuned["usage"]["prompt_tokens"] > base["usage"]["prompt_tokens"]
        assert post("/v1/unload_lora_adapter", lora_name="tuned").status_code == 200
        assert post("/v1/unload_lora_adapter", lora_name="tuned").status_code == 404
        gone = post("/v1/chat/completions", model="tuned", messages=HI)
        assert gone.status_code == 404
