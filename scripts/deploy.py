#!/usr/bin/env python3
"""`make deploy`: build every component and deploy the app to Fermyon Cloud.

    SPIN_VARIABLE_DB_URL=... SPIN_VARIABLE_OPS_PASSWORD=... make deploy
    scripts/deploy.py [--dry-run] [--manifest-only PATH]

1. `spin build` (every `[component.*.build]` of spin.toml).
2. Writes the Cloud manifest target/deploy/spin.toml: spin.toml without what Fermyon Cloud
   does not run — the `[[trigger.cron]]` table and its `dispatch-cron` component, and the
   `*.spin.internal` service-chaining hosts — with component sources made absolute, and the
   domain handlers' private routes made public as `/handlers/<domain>` (without chaining
   the dispatcher reaches them over HTTP; they refuse any request without `handler_token`).
3. `spin cloud deploy --from target/deploy/spin.toml --variable name=value ...` with every
   `SPIN_VARIABLE_<NAME>` set in the environment, plus `service_chaining=off` unless set.
   Refuses to deploy while a required variable is unset, naming it, and with
   `service_chaining` other than off (Cloud has no chaining, and the public handler routes
   must never exist beside it).

Nothing is read from scripts/env.sh: its development secrets must never reach a deployment.
`--dry-run` prints the plan (secret values redacted) and runs nothing. docs/deploy.md has
the whole procedure (database, scheduler, checklist).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "spin.toml"
CLOUD_MANIFEST = ROOT / "target" / "deploy" / "spin.toml"


def split_tables(text: str) -> list[tuple[str, str]]:
    """(header, block) pairs; the first has header '' (what precedes the first table)."""
    blocks: list[tuple[str, str]] = []
    header, lines = "", []
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\s*(\[\[?[^\]]+\]\]?)\s*(#.*)?$", line)
        if m:
            # Comments and blank lines right above a header belong to that header's table.
            lead = []
            while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
                lead.insert(0, lines.pop())
            blocks.append((header, "".join(lines)))
            header, lines = m.group(1).strip(), lead + [line]
        else:
            lines.append(line)
    blocks.append((header, "".join(lines)))
    return blocks


def cron_components(manifest: dict) -> set[str]:
    return {t["component"] for t in manifest.get("trigger", {}).get("cron", [])}


PRIVATE_ROUTE = re.compile(r"^route\s*=\s*\{\s*private\s*=\s*true\s*\}\s*$", re.M)
HANDLER_COMPONENT = re.compile(r'^component\s*=\s*"([A-Za-z0-9_-]+)-handler"\s*$', re.M)


def public_handler_route(block: str) -> str:
    """A `[[trigger.http]]` block of a domain handler with its private route made public:
    `/handlers/<domain>` for component `<domain>-handler` (what the dispatcher calls
    without service chaining, ipai_core::dispatch::Transport::handler_url)."""
    component = HANDLER_COMPONENT.search(block)
    if not component or not PRIVATE_ROUTE.search(block):
        return block
    return PRIVATE_ROUTE.sub(f'route = "/handlers/{component.group(1)}"', block)


def cloud_manifest(text: str) -> str:
    """spin.toml as Fermyon Cloud runs it (see the module doc)."""
    manifest = tomllib.loads(text)
    drop = cron_components(manifest)
    out = []
    for header, block in split_tables(text):
        if header == "[[trigger.cron]]":
            continue
        m = re.match(r"^\[component\.([A-Za-z0-9_-]+)(\.[a-z]+)?\]$", header)
        if m and m.group(1) in drop:
            continue
        if header == "[[trigger.http]]":
            block = public_handler_route(block)
        out.append(block)
    result = "".join(out)
    # Service-chaining hosts: unusable there (service_chaining=off sends HTTP instead).
    result = re.sub(r'\s*"http://[A-Za-z0-9-]+\.spin\.internal",?', "", result)
    result = re.sub(r",(\s*)\]", r"\1]", result)
    result = result.replace('source = "target/', f'source = "{ROOT}/target/')
    parsed = tomllib.loads(result)  # still valid TOML
    assert "cron" not in parsed.get("trigger", {}), "cron trigger left in the Cloud manifest"
    for name, comp in parsed.get("component", {}).items():
        hosts = comp.get("allowed_outbound_hosts", [])
        assert not any(".spin.internal" in h for h in hosts), f"{name} still lists a chaining host"
    for trigger in parsed.get("trigger", {}).get("http", []):
        if trigger.get("component", "").endswith("-handler"):
            assert isinstance(trigger.get("route"), str), f"{trigger['component']} has no public route"
    return result


def variables(manifest: dict) -> tuple[dict[str, str], list[str], set[str]]:
    """(values from SPIN_VARIABLE_*, missing required names, secret names)."""
    declared = manifest.get("variables", {})
    values = {}
    for key, value in os.environ.items():
        if key.startswith("SPIN_VARIABLE_"):
            name = key[len("SPIN_VARIABLE_"):].lower()
            if name in declared:
                values[name] = value
    values.setdefault("service_chaining", "off")
    missing = [n for n, d in declared.items() if d.get("required") and not values.get(n)]
    secrets = {n for n, d in declared.items() if d.get("secret")}
    return values, missing, secrets


def find_spin() -> str | None:
    s = os.environ.get("SPIN_BIN")
    if s and os.access(s, os.X_OK):
        return s
    return shutil.which("spin")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--manifest-only", metavar="PATH", help="write the Cloud manifest to PATH and exit")
    args = ap.parse_args()

    text = MANIFEST.read_text()
    manifest = tomllib.loads(text)
    cloud = cloud_manifest(text)
    if args.manifest_only:
        Path(args.manifest_only).parent.mkdir(parents=True, exist_ok=True)
        Path(args.manifest_only).write_text(cloud)
        return 0

    values, missing, secrets = variables(manifest)
    if missing:
        print("deploy: set these required variables (SPIN_VARIABLE_<NAME>) first: "
              + ", ".join(missing), file=sys.stderr)
        return 2
    if values["service_chaining"].strip() != "off":
        print("deploy: service_chaining must be off on Fermyon Cloud (no service chaining there; "
              "the handlers' public routes need it off): unset SPIN_VARIABLE_SERVICE_CHAINING",
              file=sys.stderr)
        return 2
    for name in ("public_base_url", "handler_base_url"):
        if name not in values:
            print(f"deploy: note: {name} is unset; after the first deploy set it to the app URL: "
                  f"spin cloud variables set {name}=https://<app>.fermyon.app --app "
                  f"{manifest['application']['name']}", file=sys.stderr)

    spin = find_spin()
    deploy = [spin or "spin", "cloud", "deploy", "--from", str(CLOUD_MANIFEST)]
    for name in sorted(values):
        deploy += ["--variable", f"{name}={values[name]}"]
    shown = [
        re.sub(r"^([a-z0-9_]+)=.*$", lambda m: f"{m.group(1)}=***", a)
        if i > 0 and deploy[i - 1] == "--variable" and a.split("=", 1)[0] in secrets else a
        for i, a in enumerate(deploy)
    ]
    if args.dry_run:
        print(f"would run: {spin or 'spin'} build --from {MANIFEST}")
        print(f"would write: {CLOUD_MANIFEST}")
        print("would run: " + " ".join(shown))
        return 0
    if not spin:
        print("deploy: no spin CLI (set SPIN_BIN or put spin on PATH; `spin plugins install cloud`)",
              file=sys.stderr)
        return 2
    subprocess.run([spin, "build", "--from", str(MANIFEST)], cwd=ROOT, check=True)
    CLOUD_MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    CLOUD_MANIFEST.write_text(cloud)
    print("deploy: " + " ".join(shown), flush=True)
    return subprocess.run(deploy, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
