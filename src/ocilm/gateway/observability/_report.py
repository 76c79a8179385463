"""Spend and traffic over time, and latency and errors per model, from spend-log rows (pure:
``GET /spend/report`` and the console read it)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Any

BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
GROUPS = {"model": "model", "key": "token", "team": "team_id"}


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


def spend_report(rows: list[dict[str, Any]], group_by: str, bucket: str) -> dict[str, Any]:
    """``rows`` as the store returns them (cost in nano-USD): a series per group of buckets
    (spend in USD, requests, errors, tokens), and per model its latency percentiles and error rate."""
    width = BUCKET_SECONDS[bucket]
    column = GROUPS[group_by]
    series: dict[str, dict[float, dict[str, float]]] = defaultdict(dict)
    latencies: dict[str, list[float]] = defaultdict(list)
    per_model: dict[str, dict[str, float]] = defaultdict(lambda: {"requests": 0, "errors": 0, "spend": 0.0})
    for row in rows:
        group = row.get(column) or "(none)"
        start = row["started_at"] // width * width
        point = series[group].setdefault(start, {"spend": 0.0, "requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0})
        cost = (row.get("cost") or 0) / 1e9
        failed = row["status"] >= 400
        point["spend"] += cost
        point["requests"] += 1
        point["errors"] += failed
        point["input_tokens"] += row.get("input_tokens") or 0
        point["output_tokens"] += row.get("output_tokens") or 0
        model = per_model[row["model"]]
        model["requests"] += 1
        model["errors"] += failed
        model["spend"] += cost
        if not failed:
            latencies[row["model"]].append(row["latency_ms"])
    models = []
    for name, totals in sorted(per_model.items()):
        values = sorted(latencies[name])
        models.append({"model": name, "requests": int(totals["requests"]), "errors": int(totals["errors"]),
                       "error_rate": totals["errors"] / totals["requests"], "spend": round(totals["spend"], 9),
                       "p50_ms": percentile(values, 0.5), "p95_ms": percentile(values, 0.95), "p99_ms": percentile(values, 0.99)})  # fmt: skip
    return {
        "group_by": group_by, "bucket": bucket,
        "series": [{"group": group, "points": [{"t": _iso(start), **{k: (round(v, 9) if k == "spend" else int(v)) for k, v in point.items()}}
                                               for start, point in sorted(points.items())]}
                   for group, points in sorted(series.items())],
        "models": models,
    }  # fmt: skip
