"""`thinkbudget` command line: `thinkbudget serve [flags]`, and the trainer's
`thinkbudget train init|sft|grpo|export` and `thinkbudget eval` (train_fusion.cli).

With no `--model`, serves the project's demo model (`models/demo`, made by train_fusion)
when it is there, else a tiny model that `train_fusion.tiny` builds locally on first use
(about a minute on CPU, cached under `.cache/`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from serve.budgeting import DEFAULT_EFFORT_BUDGETS
from serve.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "models" / "demo"


def default_model() -> tuple[str, str]:
    """(path, served name) of the model served when --model is not given: the demo model of
    this checkout (or of the working directory, as in the Docker image)."""
    for demo in (DEMO_MODEL, Path.cwd() / "models" / "demo"):
        if (demo / "config.json").is_file():
            return str(demo), "thinkbudget-demo"
    from train_fusion.tiny import ensure_tiny_model

    print("thinkbudget: no --model given; using the tiny local model (built on first run)")
    return str(ensure_tiny_model()), "thinkbudget-tiny"


def parse_efforts(text: str) -> dict[str, int]:
    table = dict(DEFAULT_EFFORT_BUDGETS)
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in table or not value.lstrip("-").isdigit() or int(value) < -1:
            raise argparse.ArgumentTypeError(
                f"bad effort budget {item!r}: use low=N,medium=N,high=N (N >= 0, or -1)"
            )
        table[name] = int(value)
    return table


def serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="start the OpenAI-compatible server")
    p.add_argument("--model", help="model folder or hub id (default: the demo model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (or THINKBUDGET_API_KEY)")
    p.add_argument("--served-model-name")
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--data-parallel-size", type=int, default=1)
    p.add_argument("--kv-cache-memory-bytes", type=int, help="KV cache size (CPU default 1 GiB)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--thinking-profile", default="auto",
                   help="auto | qwen3 | deepseek-r1 | none | PATH.json")
    p.add_argument("--reasoning-effort-budgets", type=parse_efforts, default=None,
                   help="e.g. low=1024,medium=4096,high=-1 (-1 = unlimited)")
    p.add_argument("--default-thinking-budget", type=int,
                   help="budget for requests that set none (default: unlimited)")
    p.add_argument("--answer-reserve", type=int, default=32,
                   help="answer tokens kept free of thinking within max_tokens")
    p.add_argument("--cut-mode", choices=["splice", "force"], default="splice",
                   help="splice: continue a cut request with the termination text as a "
                   "prefilled prompt (one step); force: decode it token by token")
    p.add_argument("--max-n", type=int, default=16)
    p.add_argument("--max-pending", type=int, default=512,
                   help="generation requests in flight before new ones get a 429")
    p.add_argument("--max-body-bytes", type=int, default=4 << 20,
                   help="requests with a larger body get a 413")
    p.add_argument("--cors-origin", action="append", default=[], dest="cors_origins")
    p.add_argument("--graceful-shutdown-s", type=float, default=30,
                   help="on SIGTERM, how long in-flight requests may run before they are aborted")
    p.add_argument("--log-level", default="info")


def run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from serve.app import create_app

    if args.default_thinking_budget is not None and args.default_thinking_budget < -1:
        sys.exit("thinkbudget: --default-thinking-budget must be >= 0 or -1")
    model, name = (args.model, args.served_model_name) if args.model else default_model()
    config = ServerConfig(
        model=model,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        served_model_name=args.served_model_name or name,
        max_model_len=args.max_model_len,
        tensor_parallel_size=args.tensor_parallel_size,
        data_parallel_size=args.data_parallel_size,
        kv_cache_memory_bytes=args.kv_cache_memory_bytes,
        dtype=args.dtype,
        thinking_profile=args.thinking_profile,
        reasoning_effort_budgets=args.reasoning_effort_budgets or dict(DEFAULT_EFFORT_BUDGETS),
        default_thinking_budget=args.default_thinking_budget,
        answer_reserve=args.answer_reserve,
        cut_mode=args.cut_mode,
        max_n=args.max_n,
        max_pending=args.max_pending,
        max_body_bytes=args.max_body_bytes,
        cors_origins=args.cors_origins,
    )
    from serve.engine import load_tokenizer_and_profile

    try:
        loaded = load_tokenizer_and_profile(config)
    except Exception as exc:  # a bad path, a profile the tokenizer cannot carry, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.exit(f"thinkbudget: cannot serve {config.model!r}: {reason}")
    logging.basicConfig(level=args.log_level.upper())
    app = create_app(config, loaded)
    # SIGTERM: uvicorn stops accepting, lets in-flight requests finish for up to the grace
    # period, aborts the rest, shuts the engine down (lifespan) and returns. It then re-raises
    # the signal to the handler it found; this one makes that a no-op, so a drained shutdown
    # exits 0 (and an engine death, 1).
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level,
                timeout_graceful_shutdown=args.graceful_shutdown_s)  # fmt: skip
    if app.state.engine_dead:
        sys.exit("thinkbudget: the engine died; exiting so that the server can be restarted")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="thinkbudget", description="thinking budgets for LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser(sub)
    from train_fusion.cli import add_parsers

    add_parsers(sub)
    args, extra = parser.parse_known_args(argv)
    if args.command == "serve":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        run_serve(args)
    else:
        from train_fusion.cli import run

        run(args, extra)


if __name__ == "__main__":
    main()
