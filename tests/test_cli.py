"""The CLI fails with one clear line, not a traceback, when it cannot serve a model."""

from __future__ import annotations

import subprocess
import sys

import pytest


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "thinkbudget", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def own_lines(r: subprocess.CompletedProcess) -> list[str]:
    """stderr without the notice vLLM's CPU build prints when it is imported."""
    return [line for line in r.stderr.strip().splitlines() if not line.startswith("Triton")]


def test_bad_model_path_is_one_line(tmp_path):
    r = serve("--model", str(tmp_path / "nope"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = own_lines(r)
    assert len(lines) == 1 and lines[0].startswith("thinkbudget: cannot serve")


def test_profile_the_tokenizer_cannot_carry_is_one_line(tiny_model, tmp_path):
    profile = tmp_path / "p.json"
    # Multi-token delimiters are fine; forced text that spells the end delimiter is not.
    profile.write_text('{"name": "x", "extension_text": "Wait </think>"}')
    r = serve("--model", str(tiny_model), "--thinking-profile", str(profile))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "the extension text must not contain a thinking delimiter" in r.stderr


def config_exit(*args: str) -> str:
    """The one line `thinkbudget serve ARGS` exits with over its config (in-process: no vLLM
    import per case)."""
    from thinkbudget.cli import build_parser, config_from
    from thinkbudget.serve.config import ServerConfig

    with pytest.raises(SystemExit) as exc:
        config_from(ServerConfig, build_parser().parse_args(["serve", *args]), "serve")
    return str(exc.value.code)


def test_bad_effort_table_is_rejected():
    assert "bad effort budget low=abc" in config_exit("--reasoning-effort-budgets", "low=abc")


def test_speculative_config_with_the_processor_is_refused(capsys):
    message = config_exit(
        "--speculative-config", '{"method": "ngram"}', "--budget-enforcement", "processor"
    )
    assert message.startswith("thinkbudget serve:") and "use --budget-enforcement phases" in message
    r = serve("--speculative-config", "{method")
    assert r.returncode == 2 and "argument --speculative-config" in r.stderr
    assert "Traceback" not in r.stderr


def test_speculation_selects_phases():
    from thinkbudget.serve.config import ServerConfig

    assert ServerConfig(speculative_config='{"method": "ngram"}').phased
    assert not ServerConfig().phased and ServerConfig(budget_enforcement="phases").phased
