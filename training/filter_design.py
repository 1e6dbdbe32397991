"""Anti-aliasing FIR design for the pipeline's resampler (training side: needs scipy).

The gateway never designs filters: the taps are computed here once and stored
in ``PipelineConfig.resample.taps``, which travels with the model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import signal

from edgecsi.edge.pipeline.config import PipelineConfig


def design_lowpass(rate_hz: float, phases: int, *, pass_fraction: float = 0.8,
                   atten_db: float = 70.0) -> np.ndarray:
    """Kaiser-window low-pass prototype sampled at the table rate ``rate_hz * phases``.

    Passband up to ``pass_fraction * rate_hz / 2``; stopband (``atten_db``
    down) from the output Nyquist ``rate_hz / 2``, so nothing aliases into the
    output band. Odd length, symmetric, unity DC gain (taps sum to 1).
    """
    if not 0.0 < pass_fraction < 1.0:
        raise ValueError("pass_fraction must be in (0, 1)")
    fs_mid = float(rate_hz) * int(phases)
    f_stop = float(rate_hz) / 2.0
    f_pass = pass_fraction * f_stop
    numtaps, beta = signal.kaiserord(atten_db, (f_stop - f_pass) / (fs_mid / 2.0))
    numtaps |= 1
    cutoff = min((f_pass + f_stop) / 2.0, 0.999 * fs_mid / 2.0)
    taps = signal.firwin(numtaps, cutoff, window=("kaiser", beta), fs=fs_mid)
    taps = (taps + taps[::-1]) / 2.0  # exactly symmetric
    return taps / taps.sum()


def with_lowpass(config: PipelineConfig, *, pass_fraction: float = 0.8, atten_db: float = 70.0) -> PipelineConfig:
    """``config`` with ``resample.taps`` designed for its ``rate_hz`` and ``phases``."""
    r = config.resample
    taps = design_lowpass(r.rate_hz, r.phases, pass_fraction=pass_fraction, atten_db=atten_db)
    return replace(config, resample=replace(r, taps=tuple(float(v) for v in taps)))
