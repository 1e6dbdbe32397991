"""HTTP webhook sink: POST each event as JSON; 2xx means delivered."""

from __future__ import annotations

import urllib.error
import urllib.request

from edgecsi.edge.events import Event


class WebhookSink:
    def __init__(self, url: str, *, timeout: float = 5.0, name: str = "webhook",
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.name = name
        self.headers = dict(headers or {})

    def deliver(self, event: Event) -> None:
        body = event.to_json().encode()
        # The event id lets the receiver drop a duplicate if the agent died between
        # the 2xx and recording it.
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": str(event.id),
            "X-Edgecsi-Event-Id": str(event.id), **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise ConnectionError(f"{self.url}: HTTP {exc.code}") from exc
        if not 200 <= status < 300:
            raise ConnectionError(f"{self.url}: HTTP {status}")

    def close(self) -> None:
        pass
