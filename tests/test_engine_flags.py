"""vLLM's engine flags are `thinkbudget serve` flags, from vLLM's own definitions: every one
`vllm serve` takes is listed, its value reaches vLLM's `AsyncEngineArgs` unchanged (multi-node
data parallel and the Ray backend included), and the ones thinkbudget sets itself are refused
with the flag to use instead."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thinkbudget.budget.config import ConfigError
from thinkbudget.cli import build_parser, config_from
from thinkbudget.serve.config import ServerConfig


def engine_args_of(*argv: str):
    from thinkbudget.serve.engine_args import engine_args

    ns = build_parser().parse_args(["serve", *argv])
    config = config_from(ServerConfig, ns, "serve", inputs=False)
    owned = {"logits_processors": [], "additional_config": {"thinkbudget_profile": None}}
    return engine_args(config, owned)


def test_every_vllm_engine_flag_is_a_serve_flag():
    from thinkbudget.serve.engine_args import vllm_engine_parser

    theirs = set(vllm_engine_parser()._option_string_actions)
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    ours = set(serve._option_string_actions)
    assert len(theirs) > 200 and theirs <= ours, sorted(theirs - ours)
    # and vLLM's help text comes with them
    help_text = serve.format_help()
    assert "--gpu-memory-utilization" in help_text and "--data-parallel-address" in help_text


def test_engine_flags_reach_vllm_unchanged():
    args = engine_args_of(
        *["/models/r1", "--served-model-name", "r1", "--gpu_memory_utilization", "0.85"],
        *["--max-num-seqs", "64", "--max-num-batched-tokens", "8192", "-q", "fp8"],
        *["--kv-cache-dtype", "fp8", "--enforce-eager", "--trust-remote-code", "--seed", "7"],
        *["--pipeline-parallel-size", "2", "-tp", "8", "--distributed-executor-backend", "ray"],
        *["--data-parallel-size", "4", "--data-parallel-size-local", "2"],
        *["--data-parallel-address", "10.0.0.1", "--data-parallel-rpc-port", "13345"],
        *["--enable-expert-parallel", "--hf-overrides", '{"rope_scaling": null}'],
        *["--revision", "abc", "--tokenizer", "/tok", "--max-model-len", "32768"],
        *["--generation-config", "vllm", "--override-generation-config", '{"temperature": 0.6}'],
        *["--additional-config", '{"mine": 1}'],
    )
    assert (args.model, args.served_model_name, args.gpu_memory_utilization) == (
        "/models/r1",
        ["r1"],
        0.85,
    )
    assert (args.max_num_seqs, args.max_num_batched_tokens, args.quantization) == (64, 8192, "fp8")
    assert (args.kv_cache_dtype, args.enforce_eager, args.trust_remote_code) == ("fp8", True, True)
    assert (args.pipeline_parallel_size, args.tensor_parallel_size) == (2, 8)
    assert args.distributed_executor_backend == "ray" and args.enable_expert_parallel
    assert (args.data_parallel_size, args.data_parallel_size_local) == (4, 2)
    assert (args.data_parallel_address, args.data_parallel_rpc_port) == ("10.0.0.1", 13345)
    assert args.hf_overrides == {"rope_scaling": None} and args.seed == 7
    assert (args.revision, args.tokenizer, args.max_model_len) == ("abc", "/tok", 32768)
    assert args.generation_config == "vllm"
    assert args.override_generation_config == {"temperature": 0.6}
    # the user's additional_config is kept beside thinkbudget's key
    assert args.additional_config == {"mine": 1, "thinkbudget_profile": None}


def test_yaml_takes_engine_arguments_as_vllm_serve_config_does(tmp_path):
    recipe = tmp_path / "serve.yaml"
    recipe.write_text("model: /m\nmax_num_seqs: 8\nport: 9000\nengine:\n  block_size: 32\n")
    args = engine_args_of("--config", str(recipe), "--max-num-seqs", "16")
    assert (args.model, args.max_num_seqs, args.block_size) == ("/m", 16, 32)
    recipe.write_text("max_num_seqz: 8\n")
    with pytest.raises(SystemExit, match="unknown"):
        engine_args_of("--config", str(recipe))


@pytest.mark.parametrize(
    ("flag", "instead"),
    [
        (["--reasoning-parser", "deepseek_r1"], "--thinking-profile"),
        (["--logits-processors", "my.Processor"], "--budget-enforcement"),
        (["--additional-config", '{"thinkbudget_profile": {}}'], "--thinking-profile"),
    ],
)
def test_engine_arguments_thinkbudget_sets_are_refused(flag, instead):
    with pytest.raises((SystemExit, ConfigError), match=instead):
        engine_args_of(*flag)


def test_a_refused_flag_is_one_line_from_the_cli():
    r = subprocess.run(
        [sys.executable, "-m", "thinkbudget", "serve", "--reasoning-parser", "qwen3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--reasoning-parser is not taken" in r.stderr and "--thinking-profile" in r.stderr


def test_dotted_json_flags_as_vllm_serve_takes_them():
    """`--speculative-config.method ngram` and friends merge into one JSON value per flag
    (vLLM's own rewriting), ours and vLLM's alike; `--config` stays thinkbudget's."""
    ns = build_parser().parse_args(
        ["serve", "--model", "m", "--speculative-config.method", "ngram"]
        + ["--speculative-config.num_speculative_tokens", "3", "--max_num_seqs", "4"]
        + ["--hf-overrides.max_position_embeddings=8192", "--thinking_budget_scope", "turn"]
    )
    config = config_from(ServerConfig, ns, "serve", inputs=False)
    assert config.speculative_config == {"method": "ngram", "num_speculative_tokens": 3}
    assert config.engine["hf_overrides"] == {"max_position_embeddings": 8192}
    assert config.engine["max_num_seqs"] == 4 and config.thinking_budget_scope == "turn"
