"""The agent's small local HTTP API (bound to 127.0.0.1 unless told otherwise).

GET /health -> {"ok": true, ...}; GET /stats; GET /state; GET /bundle.
Read-only: it reports, it never changes the agent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

Provider = Callable[[], Mapping]


class _Handler(BaseHTTPRequestHandler):
    routes: Mapping[str, Provider] = {}

    def do_GET(self) -> None:  # noqa: N802
        provider = self.routes.get(self.path.split("?")[0].rstrip("/") or "/health")
        if provider is None:
            self._send(404, {"error": f"no such endpoint {self.path}", "endpoints": sorted(self.routes)})
            return
        try:
            self._send(200, provider())
        except Exception as exc:  # a bug in a provider must not take the API down
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _send(self, status: int, body: Mapping) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class HttpApi:
    def __init__(self, routes: Mapping[str, Provider], host: str = "127.0.0.1", port: int = 8765) -> None:
        handler = type("Handler", (_Handler,), {"routes": dict(routes)})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-api", daemon=True)

    def start(self) -> "HttpApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
