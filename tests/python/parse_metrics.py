#!/usr/bin/env python3
"""Parses a Prometheus text exposition (stdin) with the reference Python parser
(PyPI `prometheus_client`, `prometheus_client.parser.text_string_to_metric_families`)
for tests/tests/ops.rs, and prints one JSON object on stdout:
    {"parser": "prometheus_client <version>",
     "families": [{"name", "type", "help", "samples": [{"name", "labels", "value"}]}]}
A malformed exposition makes the parser raise: non-zero exit, traceback on stderr.
"""

from __future__ import annotations

import json
import math
import sys
from importlib.metadata import version

from prometheus_client.parser import text_string_to_metric_families


def number(v: float) -> float | str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v


def main() -> int:
    text = sys.stdin.read()
    families = []
    for fam in text_string_to_metric_families(text):
        families.append(
            {
                "name": fam.name,
                "type": fam.type,
                "help": fam.documentation,
                "samples": [
                    {"name": s.name, "labels": dict(s.labels), "value": number(s.value)}
                    for s in fam.samples
                ],
            }
        )
    json.dump({"parser": f"prometheus_client {version('prometheus_client')}", "families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
