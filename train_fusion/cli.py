"""`thinkbudget train init|sft|grpo|export` and `thinkbudget eval` (wired into serve.cli).

Every stage takes `--config RECIPE.yaml`; any other `--key value` overrides a config field
(dotted for nested sections: `--fusion.cut_ratio 0.2`, `--budgets.max_budget 64`).
`--resume` continues a killed sft/grpo run from its last complete checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from train_fusion.config import ConfigError, load, parse_overrides

STAGES = ("init", "sft", "grpo", "export")


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train_fusion stages: init | sft | grpo | export")
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--config", help="YAML recipe (train_fusion/recipes/...)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    e = sub.add_parser("eval", help="accuracy vs thinking budget through the server")
    e.add_argument("--config", help="YAML recipe (train_fusion/recipes/.../eval.yaml)")
    e.add_argument("--compare", nargs="+", metavar="RESULTS_JSON",
                   help="draw these results.json files into one table and plot (--output_dir)")  # fmt: skip


def stage_module(name: str):
    import importlib

    return importlib.import_module({"eval": "train_fusion.evaluate"}.get(name, f"train_fusion.{name}"))


CONFIG_CLASSES = {
    "init": "InitConfig",
    "sft": "SFTStageConfig",
    "grpo": "GRPOStageConfig",
    "export": "ExportConfig",
    "eval": "EvalConfig",
}


def run(args: argparse.Namespace, extra: list[str]) -> None:
    name = args.stage if args.command == "train" else "eval"
    if name == "eval" and args.compare:
        from train_fusion.evaluate import compare

        out = parse_overrides(extra).get("output_dir")
        if not out:
            sys.exit("thinkbudget eval --compare needs --output_dir DIR")
        compare(args.compare, out)
        return
    module = stage_module(name)
    overrides = list(extra)
    if getattr(args, "resume", False):
        overrides += ["--resume", "true"]
    try:
        cfg = load(getattr(module, CONFIG_CLASSES[name]), args.config, overrides)
    except (ConfigError, ValueError, OSError) as exc:
        sys.exit(f"thinkbudget {args.command}: {exc}")
    module.run(cfg)


def main(argv: list[str] | None = None) -> None:
    """`python -m train_fusion train ...`: the same commands without the server's packages
    (for a training box that has torch and transformers but no vLLM or FastAPI)."""
    parser = argparse.ArgumentParser(prog="python -m train_fusion")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args, extra = parser.parse_known_args(argv)
    run(args, extra)
