#!/usr/bin/env python3
"""MCP client on the official Python SDK (PyPI `mcp` 2.x) for tests/tests/mcp.rs.

Reads a plan from stdin:
    {"url": "http://127.0.0.1:PORT/mcp", "token": "...", "mode": "auto",
     "calls": [{"name": "query_events", "arguments": {...}}, ...]}
connects (mode "auto": `server/discover` at 2026-07-28, falling back to `initialize`
only for a legacy server; "legacy": the SDK's initialize handshake), lists the tools,
calls each planned tool and prints one JSON object on stdout:
    {"sdk_version", "protocol_version", "server_info", "capabilities", "instructions",
     "discover", "initialize", "tools": [...], "calls": [{"name", "is_error",
     "structured", "texts"} | {"name", "error": {"code", "message", "data"}}]}
Anything unexpected (a result that fails the SDK's own schema or output-schema checks, a
transport failure) ends with a non-zero exit status and the traceback on stderr.
"""

from __future__ import annotations

import json
import sys
import warnings
from importlib.metadata import version
from typing import Any

import anyio
import httpx2
import mcp.client.session as sdk_session
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import Implementation


def dump(model: Any) -> Any:
    if model is None:
        return None
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    mode = plan.get("mode", "auto")
    if plan.get("offer"):
        # The SDK's legacy handshake offers its newest 2025 revision; a test may make it
        # offer an older one (2025-06-18, 2025-03-26) to exercise negotiation.
        sdk_session.LATEST_HANDSHAKE_VERSION = plan["offer"]
    headers = {"Authorization": f"Bearer {plan['token']}"}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    out: dict[str, Any] = {"sdk_version": version("mcp")}
    async with http:
        transport = streamable_http_client(plan["url"], http_client=http, terminate_on_close=False)
        client = Client(
            transport,
            mode=mode,
            client_info=Implementation(name="ipai-tests", version="1.0.0"),
        )
        async with client:
            session = client.session
            out["protocol_version"] = client.protocol_version
            out["server_info"] = dump(client.server_info)
            out["capabilities"] = dump(client.server_capabilities)
            out["instructions"] = client.instructions
            out["discover"] = dump(session.discover_result)
            out["initialize"] = dump(session.initialize_result)
            if plan.get("ping"):
                # ping exists up to 2025-11-25 (the SDK warns that 2026-07-28 removed it).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    out["ping"] = dump(await client.send_ping())
            listing = await client.list_tools()
            out["tools"] = [dump(t) for t in listing.tools]
            calls = []
            for call in plan.get("calls", []):
                entry: dict[str, Any] = {"name": call["name"], "arguments": call.get("arguments")}
                try:
                    result = await client.call_tool(call["name"], call.get("arguments"))
                except MCPError as e:
                    entry["error"] = {"code": e.code, "message": e.message, "data": e.data}
                else:
                    entry["is_error"] = bool(result.is_error)
                    entry["structured"] = result.structured_content
                    entry["texts"] = [b.text for b in result.content if getattr(b, "type", None) == "text"]
                calls.append(entry)
            out["calls"] = calls
    return out


def main() -> None:
    plan = json.load(sys.stdin)
    result = anyio.run(run, plan)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
