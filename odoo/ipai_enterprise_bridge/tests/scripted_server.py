"""A loopback TCP server that answers each HTTP request with a scripted misbehaviour
(reset, cut-off answer, over-long line, silence, a redirect, any status), for the tests
of the addon's sender: real sockets and real ``http.client`` parsing, no mocks."""

import json
import socket
import struct
import threading
import time


class ScriptedServer:
    """``server.script = [action, ...]``: one action per incoming connection (the last
    one repeats). Actions: ``("status", code, body_dict, headers)``, ``"reset"``,
    ``"close"``, ``"truncated"``, ``"long_line"``, ``"garbage"``, ``("silent", seconds)``."""

    def __init__(self):
        self.script = [("status", 202, {"id": "e-1", "status": "queued"}, {})]
        self.requests = []  # (request line, headers dict, body bytes)
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self):
        return self._sock.getsockname()[1]

    def url(self, path="/odoo-webhook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._thread.join(5)
        self._sock.close()

    def _next_action(self):
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _serve(self):
        while not self._stop.is_set():
            conn, _addr = self._sock.accept()
            if self._stop.is_set():
                conn.close()
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_request(self, conn):
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.requests.append((lines[0], headers, body))
        return headers

    def _handle(self, conn):
        try:
            if self._read_request(conn) is None:
                return
            self._act(conn, self._next_action())
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _act(self, conn, action):
        name = action if isinstance(action, str) else action[0]
        if name == "status":
            _, code, body, headers = action
            raw = json.dumps(body).encode()
            head = "HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (code, len(raw))
            head += "".join("%s: %s\r\n" % kv for kv in headers.items())
            conn.sendall(head.encode() + b"\r\n" + raw)
        elif name == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif name == "close":
            pass
        elif name == "truncated":
            conn.sendall(b'HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{"id":')
        elif name == "long_line":
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nx-filler: " + b"a" * 70000 + b"\r\n\r\n")
        elif name == "garbage":
            conn.sendall(b"SPAM\r\n\r\n")
        elif name == "silent":
            time.sleep(action[1])
        else:
            raise ValueError("unknown action %r" % (action,))
