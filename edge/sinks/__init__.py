"""Where detections go: stdout JSON lines, MQTT (Home Assistant), HTTP webhook.

Network sinks never receive events directly: the agent appends every event to the
durable :class:`edgecsi.edge.event_log.EventLog`, and a :class:`Delivery` thread per
sink sends what that sink has not yet acknowledged, in order, retrying with backoff
while the network or the broker is down.
"""
