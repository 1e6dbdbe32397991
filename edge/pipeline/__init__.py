"""The signal pipeline between parsed CSI frames and a model input, shared by training and the gateway.

Run-time imports: numpy and the standard library only (no scipy, torch or
onnx); the FIR taps are designed on the training side
(``edgecsi.training.filter_design``) and travel in the config.

Per stream (transmitter MAC x receive core x spatial stream, see
``split_streams``), in this order:

1. Kept subcarriers: nulls/guards and bins that are usually garbage (the
   batch's ``invalid`` mask) are dropped once, at fit time; optionally
   pilots. A kept bin invalid in one packet is interpolated over subcarrier
   index (``subcarriers.py``).
2. Per-packet features (``features.py``): AGC/gain normalisation
   (``gain.py``: none / per-packet mean amplitude / RSSI), then the feature
   blocks of ``config.features``: ``amplitude``, sanitised ``phase``
   (unwrapped over subcarriers, least-squares slope and offset removed,
   ``phase.py``) and ``conj`` (real/imag of ``H_a * conj(H_b)`` for adjacent
   receive antennas, ``conjugate.py``).
3. Out-of-order / duplicate packets are dropped; a gap longer than
   ``resample.max_gap_s`` ends the segment, and so does a jump back in time
   by more than that (a clock reset) (``segments.py``). Stages 4-6 run per
   segment and never reach across a gap.
4. Hampel filter over packets, per feature (``hampel.py``).
5. Uniform resampling to ``resample.rate_hz``: the packets joined by
   straight lines at their true arrival times, integrated exactly against
   the config's Kaiser low-pass prototype (a polyphase table of
   ``resample.phases`` phases per output sample), sampled at the output rate
   (``resample.py``).
6. Per-feature normalisation ``(x - mean) / std`` with training statistics
   (``normalise.py``), then windows of ``window.length`` samples every
   ``window.hop`` samples (``windowing.py``).

Model input layout: ``x[window, time, feature]`` float32, ``time`` =
``window.length`` samples at ``resample.rate_hz``, features as in
``features.py`` (blocks in ``config.features`` order; inside a block
``[rx, tx, subcarrier]``, subcarrier fastest; ``conj`` is
``[re/im, pair, tx, subcarrier]``). An Intel-5300-like 3 rx x 1 tx x 30
subcarrier stream with amplitude features gives 90 features, ``rx*30 + sc``.
``Pipeline.feature_names()`` lists them.

API::

    cfg = PipelineConfig(features=("amplitude",), window=WindowConfig(100, 10))
    cfg = edgecsi.training.filter_design.with_lowpass(cfg)   # training side: FIR taps
    pipe = build_pipeline(cfg).fit(training_batches)         # layout + normalisation stats
    text = pipe.config.to_json()                             # save with the model
    x = pipe.transform(one_stream_batch)                     # float32[window, time, feature]
    ends, x = pipe.transform_timed(one_stream_batch)         # plus window end times

    # gateway
    pipe = build_pipeline(PipelineConfig.from_json(text))
    live = pipe.streaming()                                  # one per stream
    for end_time, window in live.push(batch): ...            # any chunk size
    live.flush()                                             # end of stream / pause
    for key, part in split_streams(mixed_batch).items(): ... # or StreamRouter(cfg).push(mixed)

Streaming equals batch: ``transform`` is the streaming engine fed the whole
batch and flushed; pushing the same packets in chunks of any size gives the
same windows (a test checks it to 1e-6).
"""

from edgecsi.edge.pipeline.config import (
    CONFIG_VERSION,
    HampelConfig,
    NormaliseConfig,
    OutlierConfig,
    PipelineConfig,
    ResampleConfig,
    WindowConfig,
)
from edgecsi.edge.pipeline.pipeline import Pipeline, StreamingPipeline, build_pipeline
from edgecsi.edge.pipeline.router import StreamRouter
from edgecsi.edge.pipeline.streams import StreamKey, split_streams

__all__ = [
    "CONFIG_VERSION",
    "HampelConfig",
    "NormaliseConfig",
    "OutlierConfig",
    "Pipeline",
    "PipelineConfig",
    "ResampleConfig",
    "StreamKey",
    "StreamRouter",
    "StreamingPipeline",
    "WindowConfig",
    "build_pipeline",
    "split_streams",
]
