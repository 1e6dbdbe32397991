"""Gateway helper: one streaming pipeline per stream, fed mixed batches."""

from __future__ import annotations

import numpy as np

from edgecsi.edge.pipeline.config import PipelineConfig
from edgecsi.edge.pipeline.pipeline import StreamingPipeline
from edgecsi.edge.pipeline.streams import StreamKey, split_streams
from edgecsi.frames import CSIBatch


class StreamRouter:
    """Routes each packet to the ``StreamingPipeline`` of its ``(mac, core, stream)``.

    ``push(batch)`` -> ``[(key, window_end_time, x[time, feature]), ...]``.
    Pipelines are created on first sight of a stream; ``allowed`` (optional)
    restricts which streams are served (others are counted in ``ignored``).
    """

    def __init__(self, config: PipelineConfig, allowed: set[StreamKey] | None = None) -> None:
        self.config = config
        self.allowed = allowed
        self.pipelines: dict[StreamKey, StreamingPipeline] = {}
        self.ignored = 0

    def push(self, batch: CSIBatch) -> list[tuple[StreamKey, float, np.ndarray]]:
        out = []
        for key, part in split_streams(batch).items():
            if self.allowed is not None and key not in self.allowed:
                self.ignored += len(part)
                continue
            pipe = self.pipelines.get(key)
            if pipe is None:
                pipe = self.pipelines[key] = StreamingPipeline(self.config)
            out += [(key, end, w) for end, w in pipe.push(part)]
        return out

    def flush(self) -> list[tuple[StreamKey, float, np.ndarray]]:
        return [(key, end, w) for key, pipe in self.pipelines.items() for end, w in pipe.flush()]
