#!/usr/bin/env python3
"""A runner for Spin's conformance suite (fermyon/conformance-tests), for `make conformance`.

The suite ships tests (a `spin.toml` template, a component, a `test.json5` of requests and
expected responses) but no runner: each runtime brings its own. This one does what Spin's
own runner (spin `tests/conformance-tests`, on the suite's `test-environment` crate) does,
without Docker: it fills the manifest templates (`%{source=…}`, `%{port=…}`), starts the
test's preconditions (the suite's `http-echo.py`; PostgreSQL from this machine, with the
suite's init scripts loaded into a fresh `spin_dev` database), runs `<runtime> up --listen`
in the test's folder, sends each request and checks the response with the suite's rules
(status, then body, then headers: every header the runtime sends must be expected).

usage: conformance.py --suite DIR --components DIR --runtime NAME=CMD [...]
                      [--skipped NAME=REASON ...] TEST [...]
  --runtime local='target/release/ipai-spin-host up --from spin.toml'
  --runtime spin='target/spin-cli/spin-4.0.2/bin/spin up'
  --skipped spin='no spin CLI'

Its last line sums up every runtime, skipped ones with their reason:
`conformance: local 5/5, spin 5/5` or `conformance: local 5/5, spin skipped (no spin CLI)`;
it exits 1 when a test failed.
"""

import argparse
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = re.compile(r"%\{(.*?)\}")


def json5_loads(text):
    """The JSON5 the suite's test.json5 files use: // comments, bare keys, trailing commas."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            s = text[i + 1 : j]
            out.append(json.dumps(json.loads('"' + s.replace('"', '\\"') + '"')) if c == "'" else text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif c == ",":
            k = i + 1
            while k < n and text[k].isspace():
                k += 1
            if k < n and text[k] in "}]":
                i += 1
                continue
            out.append(c)
            i += 1
        elif c.isalpha() or c == "_":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i:])
            word = m.group(0)
            rest = text[i + len(word) :].lstrip()
            out.append(json.dumps(word) if rest.startswith(":") else word)
            i += len(word)
        else:
            out.append(c)
            i += 1
    return json.loads("".join(out))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(text, ports, source_name=None):
    def repl(m):
        key, _, value = m.group(1).partition("=")
        key, value = key.strip(), value.strip()
        if key == "source":
            return source_name or value
        if key == "port":
            guest = int(value)
            if guest not in ports:
                raise RuntimeError(f"no port {guest} exposed by any service")
            return str(ports[guest])
        raise RuntimeError(f"unknown template key: {key}")

    return TEMPLATE.sub(repl, text)


class Services:
    """The test's preconditions; `ports` maps a service's guest port to where it listens."""

    def __init__(self, suite, preconditions, workdir):
        self.procs, self.ports = [], {}
        for pre in preconditions:
            kind = pre["kind"]
            if kind == "http-echo":
                self._python(suite / "crates/test-environment/services/http-echo.py", workdir)
            elif kind == "postgres":
                self._postgres(suite / "crates/test-environment/services/postgres-init")
            else:
                raise RuntimeError(f"precondition {kind!r} is not supported by this runner")

    def _python(self, script, workdir):
        p = subprocess.Popen([sys.executable, str(script)], cwd=workdir, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        for line in p.stdout:
            m = re.match(r"PORT=\((\d+),(\d+)\)", line.strip())
            if m:
                self.ports[int(m.group(1))] = int(m.group(2))
            if "READY" in line:
                return
        raise RuntimeError(f"{script.name} exited before READY")

    def _postgres(self, init_dir):
        # As the suite's postgres image: database spin_dev, the init scripts in name order.
        host = os.environ.get("PGHOST", "127.0.0.1")
        port = int(os.environ.get("PGPORT", "5432"))
        env = dict(os.environ, PGOPTIONS="--client-min-messages=warning")  # no "does not exist, skipping"
        psql = ["psql", "-h", host, "-p", str(port), "-U", os.environ.get("PGUSER", "postgres"), "-v", "ON_ERROR_STOP=1", "-q"]
        subprocess.run(psql + ["-d", "postgres", "-c", "DROP DATABASE IF EXISTS spin_dev WITH (FORCE)"], check=True, env=env)
        subprocess.run(psql + ["-d", "postgres", "-c", "CREATE DATABASE spin_dev"], check=True, env=env)
        for sql in sorted(init_dir.glob("*.sql")):
            subprocess.run(psql + ["-d", "spin_dev", "-f", str(sql)], check=True, stdout=subprocess.DEVNULL, env=env)
        self.ports[5432] = port

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def send(port, request):
    method = request.get("method", "get").upper()
    headers = {h["name"]: h["value"] for h in request.get("headers", [])}
    body = request.get("body")
    if isinstance(body, list):
        body = bytes(body)
    elif isinstance(body, str):
        body = body.encode()
    for attempt in range(50):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(method, request.get("path", "/"), body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheaders()
        except ConnectionError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def check(expected, status, body, headers):
    """conformance-tests' assertions::assert_response."""
    want_status = expected.get("status", 200)
    text = body.decode("utf-8", "replace")
    if status != want_status:
        return f"actual status {status} != expected status {want_status} - body: {text}"
    want_body = expected.get("body") or ""
    if isinstance(want_body, list):
        want_body = bytes(want_body).decode()
    if text != want_body:
        return f"actual body != expected body\nactual: {text}\nexpected: {want_body}"
    actual = {k.lower(): v.lower() for k, v in headers}
    for h in expected.get("headers", []):
        name = h["name"].lower()
        value = actual.pop(name, None)
        if value is None:
            if h.get("optional"):
                continue
            return f"expected header '{h['name']}' not found in response"
        if "value" in h and value != h["value"].lower():
            return f"header '{h['name']}' has unexpected value '{value}' != '{h['value'].lower()}'"
    if actual:
        return f"unexpected headers: {actual}"
    return None


def wait_listening(proc, port, deadline):
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def run_test(suite, components, name, command, workdir):
    test_dir = suite / "tests" / name
    config = json5_loads((test_dir / "test.json5").read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    services = Services(suite, config.get("preconditions", []), workdir)
    runtime = None
    try:
        manifest = (test_dir / "spin.toml").read_text()
        for comp in TEMPLATE.findall(manifest):
            key, _, value = comp.partition("=")
            if key.strip() == "source":
                shutil.copy(components[value.strip()], workdir / "component.wasm")
        (workdir / "spin.toml").write_text(substitute(manifest, services.ports, "component.wasm"))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIN_VARIABLE_")}
        log = open(workdir / "runtime.log", "w")
        runtime = subprocess.Popen(
            shlex.split(command) + ["--listen", f"127.0.0.1:{port}"],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # `spin up` runs each trigger as a child: stop them all
        )
        if not wait_listening(runtime, port, time.time() + 120):
            return "the runtime did not start:\n" + (workdir / "runtime.log").read_text()
        for inv in config["invocations"]:
            http_inv = inv.get("http", inv)
            req = json.loads(substitute(json.dumps(http_inv["request"]), services.ports))
            status, body, headers = send(port, req)
            err = check(http_inv["response"], status, body, headers)
            if err:
                return err + "\n--- runtime output:\n" + (workdir / "runtime.log").read_text()
        return None
    finally:
        if runtime is not None:
            try:
                os.killpg(runtime.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            runtime.wait()
        services.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", type=Path, required=True)
    ap.add_argument("--components", type=Path, required=True, help="folder of the built .wasm files")
    ap.add_argument("--runtime", action="append", required=True, help="NAME=COMMAND (run in the test folder, gets --listen)")
    ap.add_argument("--skipped", action="append", default=[], help="NAME=REASON: a runtime not run, and why")
    ap.add_argument("--workdir", type=Path, default=Path("target/conformance/run"))
    ap.add_argument("tests", nargs="+")
    args = ap.parse_args()

    # `%{source=<dir>}` names a folder of components/; its package name gives the .wasm.
    components = {}
    for cargo in (args.suite / "components").glob("*/Cargo.toml"):
        m = re.search(r'^name\s*=\s*"([^"]+)"', cargo.read_text(), re.M)
        if m:
            components[cargo.parent.name] = args.components / (m.group(1).replace("-", "_") + ".wasm")

    total_failed, summary = 0, []
    for spec in args.runtime:
        rt, _, command = spec.partition("=")
        passed, failed = 0, 0
        for name in args.tests:
            try:
                err = run_test(args.suite, components, name, command, args.workdir.resolve() / rt / name)
            except Exception as e:  # a broken precondition fails the test, not the run
                err = f"{type(e).__name__}: {e}"
            if err:
                failed += 1
                print(f"FAIL {rt} {name}\n  " + err.replace("\n", "\n  "))
            else:
                passed += 1
                print(f"ok   {rt} {name}")
            sys.stdout.flush()
        print(f"conformance-{rt}: {passed} passed, {failed} failed")
        summary.append(f"{rt} {passed}/{passed + failed}")
        total_failed += failed
    for spec in args.skipped:
        rt, _, reason = spec.partition("=")
        summary.append(f"{rt} skipped ({reason})")
    print("conformance: " + ", ".join(summary))
    sys.exit(1 if total_failed else 0)


if __name__ == "__main__":
    main()
