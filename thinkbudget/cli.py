"""`thinkbudget` command line: `serve`, `train init|sft|grpo|export` and `eval`.

The one module that sees both `thinkbudget.serve` and `thinkbudget.train_fusion`. Each
command's flags are derived from its config dataclass (`ServerConfig`, the trainer's stage
configs) by `thinkbudget.budget.config`; every command also takes `--config FILE.yaml`, whose
keys the flags override. Heavy imports (vLLM, TRL) happen only in the command that runs.

With no `--model`, `serve` serves the project's demo model (`models/demo` of this checkout,
or of the working directory as in the Docker image).

Launch: `thinkbudget serve --model FOLDER`, `thinkbudget train sft --config RECIPE.yaml`,
`thinkbudget eval --config RECIPE.yaml` (`--help` on each lists its flags).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from thinkbudget.budget.config import ConfigError, add_arguments, build, given_flags, load, merge
from thinkbudget.serve.config import ServerConfig
from thinkbudget.train_fusion import config as train_config

DEMO_MODEL = Path(__file__).resolve().parent.parent / "models" / "demo"
# stage -> (config class, module that runs it)
STAGES: dict[str, tuple[type, str]] = {
    "init": (train_config.InitConfig, "thinkbudget.train_fusion.init"),
    "sft": (train_config.SFTStageConfig, "thinkbudget.train_fusion.sft"),
    "grpo": (train_config.GRPOStageConfig, "thinkbudget.train_fusion.grpo"),
    "export": (train_config.ExportConfig, "thinkbudget.train_fusion.export"),
}
PATH_INPUTS = ("model", "data")  # config fields that name an input folder or file


def default_model() -> tuple[str, str]:
    """(path, served name) of the model served when --model is not given."""
    for demo in (DEMO_MODEL, Path.cwd() / "models" / "demo"):
        if (demo / "config.json").is_file():
            return str(demo), "thinkbudget-demo"
    sys.exit("thinkbudget: no --model given and no demo model (models/demo) here; pass --model")


def _subparser(sub: Any, name: str, cls: type, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", help="YAML file of this command's fields; flags override it")
    add_arguments(p, cls)
    return p


class Parser(argparse.ArgumentParser):
    """`serve` takes vLLM's dotted JSON spelling of its flags, as `vllm serve` does."""

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        if args[:1] == ["serve"]:
            from thinkbudget.serve.engine_args import expand_dotted

            args = ["serve", *expand_dotted(args[1:])]
        return super().parse_args(args, namespace)


def build_parser(engine_flags: bool = True) -> argparse.ArgumentParser:
    """`engine_flags`: give `serve` vLLM's engine flags (imports vLLM: only when serving)."""
    parser = Parser(prog="thinkbudget", description="thinking budgets for LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = _subparser(sub, "serve", ServerConfig, "start the OpenAI-compatible server")
    serve.add_argument(
        "model_tag", nargs="?", metavar="MODEL", help="the model, as vllm serve takes it (--model)"
    )
    if engine_flags:
        from thinkbudget.serve.engine_args import add_engine_arguments
        from thinkbudget.serve.frontend_args import add_frontend_arguments

        add_engine_arguments(serve)
        add_frontend_arguments(serve)
    train = sub.add_parser("train", help="train_fusion stages: init | sft | grpo | export")
    stages = train.add_subparsers(dest="stage", required=True)
    for name, (cls, _) in STAGES.items():
        _subparser(stages, name, cls, f"train_fusion stage {name}")
    e = _subparser(sub, "eval", train_config.EvalConfig, "accuracy vs thinking budget")
    e.add_argument(
        "--compare",
        nargs="+",
        metavar="RESULTS_JSON",
        help="draw these results.json files into one table and plot (--output_dir)",
    )
    return parser


def config_from(cls: type, ns: argparse.Namespace, command: str, inputs: bool = True) -> Any:
    """The command's config, or a one-line exit that says what is wrong (with `inputs`, also
    when a local input folder or file it names is missing)."""
    try:
        if cls is ServerConfig:  # vLLM's engine arguments may be top-level YAML keys
            from thinkbudget.serve.engine_args import check_engine, split_engine_keys
            from thinkbudget.serve.frontend_args import check_frontend, split_frontend_keys

            data = yaml.safe_load(Path(ns.config).read_text()) or {} if ns.config else {}
            given = given_flags(ns, cls) | ({"model": ns.model_tag} if ns.model_tag else {})
            cfg = build(cls, merge(split_frontend_keys(split_engine_keys(data)), given))
            check_engine(cfg)
            check_frontend(cfg.frontend)
        else:
            cfg = load(cls, ns.config, given_flags(ns, cls))
    except (ConfigError, ValueError, OSError) as exc:
        sys.exit(f"thinkbudget {command}: {exc}")
    for name in PATH_INPUTS if inputs else ():
        value = getattr(cfg, name, None)
        looks_local = value and (
            value.startswith((".", "/")) or Path(value).parts[0] in ("runs", "data", "models")
        )
        if looks_local and not Path(value).exists():
            sys.exit(
                f"thinkbudget {command}: {name} {value!r} does not exist (run the stage "
                "that makes it first)"
            )
    return cfg


def run_serve(config: ServerConfig) -> None:
    import uvicorn

    from thinkbudget.serve.adapters import load_adapters
    from thinkbudget.serve.app import create_app
    from thinkbudget.serve.engine import load_tokenizer_and_profile
    from thinkbudget.serve.frontend_args import check_frontend, uvicorn_settings

    if config.model is None:
        config.model, name = default_model()
        config.served_model_name = config.served_model_name or name
    try:
        loaded = load_tokenizer_and_profile(config)
        load_adapters(config, *loaded)  # checked before the engine starts
    except Exception as exc:  # a bad path, a profile the tokenizer cannot carry, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.exit(f"thinkbudget: cannot serve {config.model!r}: {reason}")
    logging.basicConfig(level=config.log_level.upper())
    quiet = check_frontend(config.frontend)
    if quiet:
        logging.getLogger("thinkbudget").info(
            "vLLM logging flags not acted on (no response changes): %s", ", ".join(quiet)
        )
    app = create_app(config, loaded)
    # SIGTERM: uvicorn stops accepting, lets in-flight requests finish for up to the grace
    # period, aborts the rest, shuts the engine down (lifespan) and returns. It then re-raises
    # the signal to the handler it found; this one makes that a no-op, so a drained shutdown
    # exits 0 (and an engine death, 1).
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        timeout_graceful_shutdown=config.graceful_shutdown_s,
        **uvicorn_settings(config.frontend, config.log_level),
    )
    if app.state.engine_dead:
        sys.exit("thinkbudget: the engine died; exiting so that the server can be restarted")


def run_eval(ns: argparse.Namespace) -> None:
    from thinkbudget.train_fusion import evaluate

    if ns.compare:
        if not getattr(ns, "output_dir", None):
            sys.exit("thinkbudget eval --compare needs --output_dir DIR")
        evaluate.compare(ns.compare, ns.output_dir)
        return
    cfg = config_from(train_config.EvalConfig, ns, "eval")
    if cfg.base_url:
        evaluate.run(cfg, cfg.base_url)
        return
    from thinkbudget.launch import ServerProcess

    out = Path(cfg.output_dir)
    with ServerProcess(evaluate.server_args(cfg), out / "server.log") as server:
        evaluate.run(cfg, server.url)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ns = build_parser(engine_flags=argv[:1] == ["serve"]).parse_args(argv)
    if ns.command == "serve":
        run_serve(config_from(ServerConfig, ns, "serve", inputs=False))
    elif ns.command == "eval":
        run_eval(ns)
    else:
        cls, module = STAGES[ns.stage]
        cfg = config_from(cls, ns, f"train {ns.stage}")
        importlib.import_module(module).run(cfg)


if __name__ == "__main__":
    main()
