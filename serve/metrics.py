"""Prometheus metrics of the server, in one registry per app (text format at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TOKEN_BUCKETS = (0, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()

        def histogram(name: str, what: str, buckets: tuple = TIME_BUCKETS) -> Histogram:
            return Histogram(name, what, buckets=buckets, registry=r)

        self.requests = Counter(
            "thinkbudget_requests",
            "Finished requests by endpoint, thinking mode and outcome",
            ["endpoint", "mode", "outcome"],
            registry=r,
        )
        self.thinking_tokens = histogram(
            "thinkbudget_thinking_tokens",
            "Thinking tokens the model generated, per choice",
            TOKEN_BUCKETS,
        )
        self.answer_tokens = histogram(
            "thinkbudget_answer_tokens", "Answer (content) tokens, per choice", TOKEN_BUCKETS
        )
        self.forced_tokens = Counter(
            "thinkbudget_forced_tokens",
            "Tokens forced by the server (termination, extension)",
            registry=r,
        )
        self.cuts = Counter("thinkbudget_budget_cuts", "Choices whose thinking was cut", registry=r)
        self.utilisation = histogram(
            "thinkbudget_budget_utilisation",
            "Thinking tokens / effective budget, per choice",
            RATIO_BUCKETS,
        )
        self.ttft = histogram(
            "thinkbudget_time_to_first_token_seconds", "Arrival to first generated token"
        )
        self.ttfa = histogram(
            "thinkbudget_time_to_first_answer_token_seconds",
            "Arrival to first answer (content) token",
        )
        self.latency = histogram("thinkbudget_request_latency_seconds", "Arrival to last token")
        self.continuation_wait = histogram(
            "thinkbudget_cut_continuation_wait_seconds",
            "A spliced cut's continuation: submitted to its first output (its wait for a slot)",
        )
        self.in_flight = Gauge(
            "thinkbudget_requests_in_flight", "Requests being generated", registry=r
        )
        self.engine_requests = Gauge(
            "thinkbudget_engine_unfinished_requests",
            "Requests the engine still holds (read at scrape time)",
            registry=r,
        )
