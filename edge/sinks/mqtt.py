"""MQTT sink with Home Assistant discovery.

Topics (``node`` = the gateway's id, ``entity`` = stream + task):

- ``{prefix}/{node}/status``: ``online`` / ``offline``, retained; ``offline`` is also the
  last will, so Home Assistant marks the entities unavailable when the agent dies.
- ``{prefix}/{node}/{entity}/state``: the smoothed state, retained (``ON``/``OFF`` for
  presence, the label or the count otherwise); ``.../attributes``: the whole event as JSON.
- ``{discovery}/{binary_sensor|sensor}/{node}_{entity}/config``: retained discovery
  document, published before the first state of each entity and again after every reconnect.
"""

from __future__ import annotations

import json
import re
import threading

import paho.mqtt.client as mqtt

from edgecsi.edge.events import Event

NEGATIVE_STATES = {"empty", "absent", "none", "no", "off", "0", "false", "nobody"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class MqttSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, node_id: str = "edgecsi",
                 prefix: str = "edgecsi", discovery_prefix: str = "homeassistant", timeout: float = 5.0,
                 username: str | None = None, password: str | None = None, name: str = "mqtt",
                 keepalive: int = 30) -> None:
        self.name = name
        self.node = _slug(node_id)
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.timeout = timeout
        self.status_topic = f"{prefix}/{self.node}/status"
        self._announced: set[str] = set()
        self._connected = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgecsi-{self.node}",
                                   clean_session=True)
        if username:
            self._client.username_pw_set(username, password)
        self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.connect_async(host, port, keepalive=keepalive)
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code == 0 or getattr(reason_code, "is_failure", True) is False:
            client.publish(self.status_topic, "online", qos=1, retain=True)
            self._announced.clear()  # re-announce after every reconnect (the broker may be new)
            self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _publish(self, topic: str, payload: str, *, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise ConnectionError(f"MQTT publish to {topic} not acknowledged within {self.timeout}s")

    def entity(self, event: Event) -> str:
        return _slug(f"{event.stream}_{event.task}")

    def discovery(self, event: Event) -> tuple[str, dict]:
        entity = self.entity(event)
        base = f"{self.prefix}/{self.node}/{entity}"
        binary = event.task == "presence"
        component = "binary_sensor" if binary else "sensor"
        config = {
            "name": f"{event.task} {event.stream}",
            "unique_id": f"{self.node}_{entity}",
            "object_id": f"{self.node}_{entity}",
            "state_topic": f"{base}/state",
            "json_attributes_topic": f"{base}/attributes",
            "availability_topic": self.status_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {"identifiers": [f"edgecsi_{self.node}"], "name": f"edgecsi {self.node}",
                       "manufacturer": "edgecsi", "model": "CSI gateway"},
        }
        if binary:
            config.update({"device_class": "occupancy", "payload_on": "ON", "payload_off": "OFF"})
        elif event.task == "counting":
            config.update({"state_class": "measurement", "unit_of_measurement": "people"})
        return f"{self.discovery_prefix}/{component}/{self.node}_{entity}/config", config

    def state_payload(self, event: Event) -> str:
        if event.task == "presence":
            return "OFF" if event.state.lower() in NEGATIVE_STATES else "ON"
        return event.state

    def deliver(self, event: Event) -> None:
        if not self._connected.wait(self.timeout):
            raise ConnectionError("MQTT broker not connected")
        entity = self.entity(event)
        if entity not in self._announced:
            topic, config = self.discovery(event)
            self._publish(topic, json.dumps(config, sort_keys=True), retain=True)
            self._announced.add(entity)
        base = f"{self.prefix}/{self.node}/{entity}"
        self._publish(f"{base}/attributes", event.to_json(), retain=True)
        self._publish(f"{base}/state", self.state_payload(event), retain=True)

    def close(self) -> None:
        try:
            if self._connected.is_set():
                self._client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(1.0)
            self._client.disconnect()
        finally:
            self._client.loop_stop()
