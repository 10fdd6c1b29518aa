#!/usr/bin/env python3
"""2025-revision MCP client for tests/tests/mcp.rs.

Reads a plan from stdin:
    {"url": "...", "token": "...", "revision": "2025-11-25" | "2025-06-18" | "2025-03-26",
     "calls": [{"name": ..., "arguments": {...}}, ...]}
and speaks that revision twice:

* "sdk": the official Python SDK (`mcp` 2.x) in its legacy mode: `initialize` handshake
  offering `revision`, `notifications/initialized`, `ping`, `tools/list`, `tools/call`
  (the SDK validates every result against the 2025 schema and each tool's outputSchema);
* "raw": plain JSON-RPC over HTTP, as a 2025 client writes it by hand: `initialize`
  without a version header, then every request with `MCP-Protocol-Version: <revision>`
  (none for 2025-03-26, which predates the header), a notification, `ping`, `tools/list`,
  each tool, an unknown method, a GET, and for 2025-03-26 a JSON-RPC batch.

Prints {"revision", "sdk": {...}, "raw": {...}} as one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

import anyio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mcp_client_current import run as run_sdk  # noqa: E402


def http(url: str, token: str, method: str, body: Any | None, headers: dict[str, str]) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Accept", "application/json, text/event-stream")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, hdrs = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    parsed = None
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
    return {
        "status": status,
        "body": parsed,
        "body_bytes": len(raw),
        "session_id": hdrs.get("Mcp-Session-Id"),
        "allow": hdrs.get("Allow"),
    }


def raw_session(plan: dict[str, Any]) -> dict[str, Any]:
    url, token, rev = plan["url"], plan["token"], plan["revision"]
    # 2025-03-26 has no MCP-Protocol-Version header; later revisions send it after initialize.
    vh = {} if rev == "2025-03-26" else {"MCP-Protocol-Version": rev}
    ids = iter(range(1, 1000))

    def call(method: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(ids), "method": method}
        if params is not None:
            body["params"] = params
        return http(url, token, "POST", body, vh if headers is None else headers)

    out: dict[str, Any] = {}
    out["initialize"] = call(
        "initialize",
        {"protocolVersion": rev, "capabilities": {}, "clientInfo": {"name": "raw-2025", "version": "1.0.0"}},
        headers={},
    )
    out["initialized"] = http(url, token, "POST", {"jsonrpc": "2.0", "method": "notifications/initialized"}, vh)
    out["ping"] = call("ping")
    out["tools_list"] = call("tools/list")
    out["calls"] = [call("tools/call", {"name": c["name"], "arguments": c.get("arguments", {})}) for c in plan["calls"]]
    out["unknown_method"] = call("resources/templates/list")
    out["unknown_tool"] = call("tools/call", {"name": "drop_tables", "arguments": {}})
    out["get"] = http(url, token, "GET", None, vh)
    if rev == "2025-03-26":
        out["batch"] = http(
            url,
            token,
            "POST",
            [
                {"jsonrpc": "2.0", "id": "b1", "method": "ping"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": "b2", "method": "tools/call",
                 "params": {"name": "outbox_health", "arguments": {}}},
            ],
            {},
        )
    return out


def main() -> None:
    plan = json.load(sys.stdin)
    sdk_plan = dict(plan, mode="legacy", offer=plan["revision"], ping=True)
    result = {
        "revision": plan["revision"],
        "sdk": anyio.run(run_sdk, sdk_plan),
        "raw": raw_session(plan),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
