"""edgecsi.edge.pipeline: hand-computed stage values, streaming == batch, resampling, gaps, config, imports."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from edgecsi.edge.pipeline import (
    HampelConfig,
    NormaliseConfig,
    OutlierConfig,
    Pipeline,
    PipelineConfig,
    ResampleConfig,
    StreamKey,
    StreamRouter,
    WindowConfig,
    build_pipeline,
    split_streams,
)
from edgecsi.edge.pipeline.features import PacketFeatures
from edgecsi.edge.pipeline.gain import agc_scale
from edgecsi.edge.pipeline.hampel import HampelFilter, hampel
from edgecsi.edge.pipeline.normalise import FeatureStats
from edgecsi.edge.pipeline.phase import sanitize_phase
from edgecsi.edge.pipeline.resample import UniformResampler
from edgecsi.edge.pipeline.subcarriers import choose_subcarriers, select_subcarriers
from edgecsi.frames import concat, make_batch, mac_to_int
from edgecsi.training.filter_design import design_lowpass, with_lowpass
from edgecsi.training.outliers import inlier_mask

# Intel 5300 grouping of a 20 MHz channel: 30 subcarriers.
INTEL_SC = np.array(list(range(-28, -1, 2)) + [-1] + list(range(1, 28, 2)) + [28])
HT20_SC = np.array([k for k in range(-28, 29) if k != 0])
MAC = mac_to_int("00:16:ea:12:34:56")


def intel_like(n: int, *, rate: float = 100.0, jitter: float = 0.3, seed: int = 0, t0: float = 1.7e9,
               n_rx: int = 3, mac: int = MAC, rssi: bool = True):
    """A 3 rx x 1 tx x 30 subcarrier stream: slowly moving multipath, per-packet gain/phase offsets, noise."""
    rng = np.random.default_rng(seed)
    dt = (1 + rng.uniform(-jitter, jitter, n)) / rate
    t = t0 + np.cumsum(dt)
    k = INTEL_SC[None, None, :].astype(float)
    delays = rng.uniform(0, 0.05, (1, n_rx, 1))
    motion = np.sin(2 * np.pi * 0.7 * (t - t0))[:, None, None]
    h = 1.0 + 0.4 * np.exp(1j * (2 * np.pi * delays * k + 2.0 * motion))
    gain = rng.uniform(0.5, 2.0, (n, 1, 1))  # AGC
    offset = np.exp(1j * (rng.uniform(-np.pi, np.pi, (n, 1, 1)) + rng.normal(0, 0.05, (n, 1, 1)) * k))
    noise = 0.02 * (rng.normal(size=h.shape) + 1j * rng.normal(size=h.shape))
    csi = (gain * (h + noise) * offset)[:, :, None, :]
    return make_batch(format="test", chip="iwl5300", subcarriers=INTEL_SC, csi=csi, time=t, mac=np.full(n, mac),
                      rssi=rng.uniform(-50, -40, n) if rssi else None, bandwidth_mhz=np.full(n, 20))


def config(**changes) -> PipelineConfig:
    base = PipelineConfig(window=WindowConfig(length=50, hop=7), resample=ResampleConfig(rate_hz=50.0, phases=8))
    return with_lowpass(replace(base, **changes))


# ---------------------------------------------------------------- per-packet stages, hand-computed


def test_phase_sanitisation_three_bins_by_hand():
    # phase [0, 1, 0] at k = -1, 0, 1: best line is 1/3 (no slope), residual [-1/3, 2/3, -1/3].
    csi = np.exp(1j * np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(sanitize_phase(csi, np.array([-1, 0, 1])), [-1 / 3, 2 / 3, -1 / 3], atol=1e-12)


def test_phase_sanitisation_removes_wrapping_line_and_keeps_curvature():
    k = HT20_SC.astype(float)
    # Slope 0.9 rad per bin wraps about 16 times over the band; offset 1.2; curvature 0.01 k^2.
    phase = 0.9 * k + 1.2 + 0.01 * k**2
    out = sanitize_phase(np.exp(1j * phase)[None, :], HT20_SC)[0]
    # k is symmetric, so k^2 is orthogonal to k: the residual is 0.01 (k^2 - mean k^2).
    np.testing.assert_allclose(out, 0.01 * (k**2 - np.mean(k**2)), atol=1e-9)
    pure = sanitize_phase(np.exp(1j * (0.9 * k + 1.2))[None, :], HT20_SC)[0]
    np.testing.assert_allclose(pure, 0.0, atol=1e-9)


def test_hampel_replaces_a_known_spike_only():
    x = np.array([1, 2, 3, 4, 5, 6, 7, 100, 9, 10, 11, 12, 13, 14, 15], dtype=float)
    # Window around 100: {5,6,7,100,9,10,11}: median 9, MAD 2 -> threshold 3 * 1.4826 * 2 = 8.9 < 91.
    expected = x.copy()
    expected[7] = 9.0
    np.testing.assert_array_equal(hampel(x, 3, 3.0), expected)


def test_hampel_cut_window_at_segment_start():
    x = np.array([50, 1, 2, 3, 4, 5, 6, 7], dtype=float)
    # Index 0 sees {50,1,2,3}: median 2.5, MAD 1.0 -> |50 - 2.5| > 4.45, replaced by 2.5.
    np.testing.assert_array_equal(hampel(x, 3, 3.0), [2.5, 1, 2, 3, 4, 5, 6, 7])


def test_hampel_streaming_matches_batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    x[rng.integers(0, 200, 15), rng.integers(0, 4, 15)] += 20
    whole = hampel(x, 4, 3.0)
    f = HampelFilter(4, 3.0)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 9))
        parts.append(f.push(np.arange(i, min(i + n, len(x)), dtype=float), x[i: i + n])[1])
        i += n
    parts.append(f.flush()[1])
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_conjugate_multiplication_by_hand():
    csi = np.zeros((1, 2, 1, 3), dtype=complex)
    csi[0, 0, 0] = 2 * np.exp(0.5j)
    csi[0, 1, 0] = 3 * np.exp(0.2j)
    batch = make_batch(format="t", chip="t", subcarriers=[-1, 1, 2], csi=csi, time=[0.0])
    cfg = replace(config(features=("conj",), agc="none"), subcarriers=(-1, 1, 2), n_rx=2, n_tx=1)
    _, x = PacketFeatures(cfg)(batch)
    # 2 e^{0.5j} * conj(3 e^{0.2j}) = 6 e^{0.3j}; layout [re/im, pair, tx, subcarrier].
    np.testing.assert_allclose(x[0], [6 * np.cos(0.3)] * 3 + [6 * np.sin(0.3)] * 3, atol=1e-6)


def test_agc_scales_by_hand():
    csi = np.array([1, 2, 3], dtype=complex).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(agc_scale(csi, "mean"), [0.5])
    np.testing.assert_allclose(agc_scale(csi, "none"), [1.0])
    # rms |H| = sqrt(14/3); -40 dBm -> amplitude 10^-2.
    np.testing.assert_allclose(agc_scale(csi, "rssi", np.array([-40.0])), [1e-2 / np.sqrt(14 / 3)])
    assert np.isnan(agc_scale(csi, "rssi", np.array([np.nan]))[0])


def test_mean_agc_removes_per_packet_gain():
    b = intel_like(20, seed=3)
    cfg = replace(config(), subcarriers=tuple(int(s) for s in INTEL_SC), n_rx=3, n_tx=1)
    doubled = replace(b, csi=b.csi * np.float32(2.0))
    np.testing.assert_allclose(PacketFeatures(cfg)(b)[1], PacketFeatures(cfg)(doubled)[1], rtol=1e-6)
    np.testing.assert_allclose(PacketFeatures(cfg)(b)[1].mean(axis=1), 1.0, rtol=1e-9)


def test_subcarrier_choice_and_per_packet_fill():
    n = 10
    sc = np.arange(-32, 32)
    csi = np.ones((n, 1, 1, 64), dtype=complex) * (1 + sc)  # value 1 + k, so interpolation is exact
    invalid = np.zeros((n, 64), dtype=bool)
    invalid[:, np.abs(sc) > 28] = True  # guards
    invalid[:, sc == 0] = True  # DC
    invalid[0, sc == 5] = True  # one packet's garbage word
    batch = make_batch(format="t", chip="t", subcarriers=sc, csi=csi, invalid=invalid, time=np.arange(n),
                       bandwidth_mhz=np.full(n, 20))
    kept = choose_subcarriers([batch], max_invalid_fraction=0.5, drop_pilots=False)
    assert kept == tuple(int(k) for k in HT20_SC)
    no_pilots = choose_subcarriers([batch], max_invalid_fraction=0.5, drop_pilots=True)
    assert set(kept) - set(no_pilots) == {-21, -7, 7, 21}
    cols = np.searchsorted(sc, kept)
    out, ok = select_subcarriers(batch, cols, kept)
    assert ok.all()
    np.testing.assert_allclose(out[0, 0, 0, kept.index(5)], 6.0)  # filled from bins 4 (5) and 6 (7)


def test_normalisation_statistics_by_hand():
    # Feature 0 takes 1 and 3 (mean 2, std 1); feature 1 is constant 5 (std 0 -> left unscaled).
    windows = np.array([[[1.0, 5.0], [3.0, 5.0]], [[3.0, 5.0], [1.0, 5.0]]])
    stats = FeatureStats()
    stats.update(windows[:1])
    stats.update(windows[1:])
    np.testing.assert_allclose(stats.mean, [2.0, 5.0])
    np.testing.assert_allclose(stats.std(), [1.0, 0.0])
    from edgecsi.edge.pipeline.normalise import Normaliser

    norm = Normaliser(stats.mean, stats.std(), 1e-6)
    np.testing.assert_allclose(norm(np.array([[4.0, 5.0]])), [[2.0, 0.0]])


def test_fit_gives_zero_mean_unit_std_windows():
    b = intel_like(1500, seed=4)
    pipe = build_pipeline(config()).fit(b)
    x = pipe.transform(b)
    assert x.dtype == np.float32 and x.shape[1:] == (50, 90)
    np.testing.assert_allclose(x.reshape(-1, 90).mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.reshape(-1, 90).std(axis=0), 1.0, atol=1e-4)
    assert pipe.feature_names()[31] == "amplitude[rx1,tx0,sc-26]"


# ---------------------------------------------------------------- streaming == batch


@pytest.mark.parametrize("features", [("amplitude",), ("amplitude", "phase", "conj")])
def test_streaming_equals_batch_in_random_chunks(features):
    rng = np.random.default_rng(5)
    a = intel_like(500, seed=6)
    gap_start = a.time[-1] + 1.3  # longer than max_gap_s: a second segment
    b = intel_like(400, seed=7, t0=gap_start)
    rec = concat([a, b])
    # Garbage bins in some packets, one duplicate timestamp, one packet out of order.
    invalid = rec.invalid.copy()
    invalid[rng.integers(0, len(rec), 40), rng.integers(0, 30, 40)] = True
    time = rec.time.copy()
    time[100] = time[99]
    time[300], time[301] = time[301], time[300]
    rec = replace(rec, invalid=invalid, time=time)
    pipe = build_pipeline(config(features=features)).fit(rec)
    ends, whole = pipe.transform_timed(rec)
    assert len(whole) > 30

    for trial in range(3):
        live = pipe.streaming()
        got, i = [], 0
        while i < len(rec):
            n = int(rng.integers(1, 60)) if trial else int(rng.integers(1, 4))
            got += live.push(rec.select(slice(i, i + n)))
            i += n
        got += live.flush()
        assert len(got) == len(whole)
        np.testing.assert_allclose(np.array([e for e, _ in got]), ends, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.stack([w for _, w in got]), whole, rtol=0, atol=1e-6)
    assert live.out_of_order == 2 and live.segments == 2


# ---------------------------------------------------------------- resampling and gaps


def _tone_level_db(rate, phases, pkt_rate, freq, seconds=20.0, start_phase=0.37):
    """Output RMS of a unit sine sampled by packets at a steady rate not locked to the output grid, in dB."""
    t = 1.7e9 + (np.arange(int(seconds * pkt_rate)) + start_phase) / pkt_rate
    r = UniformResampler(rate, phases, design_lowpass(rate, phases))
    _, y = r.push(t, np.sin(2 * np.pi * freq * t + 0.3)[:, None])
    return 20 * np.log10(np.sqrt(np.mean(y**2)) / np.sqrt(0.5))


@pytest.mark.parametrize("freq", [27.0, 40.0, 61.0, 95.0])
def test_out_of_band_tone_suppressed_60_db(freq):
    # 50 Hz output (Nyquist 25 Hz) from packets at 203.1 Hz: every tone above 25 Hz must vanish.
    assert _tone_level_db(50.0, 8, 203.1, freq) < -60.0


def test_in_band_tone_passes_and_naive_decimation_would_alias():
    assert abs(_tone_level_db(50.0, 8, 203.1, 5.0)) < 0.05
    # Without the low-pass, picking packets every 20 ms keeps the 40 Hz tone at full power (aliased to 10 Hz).
    t = 1.7e9 + (np.arange(4000) + 0.37) / 203.1
    picked = np.sin(2 * np.pi * 40.0 * t[np.searchsorted(t, np.arange(t[0], t[-1], 0.02))] + 0.3)
    assert 20 * np.log10(np.sqrt(np.mean(picked**2)) / np.sqrt(0.5)) > -1.0


def test_resampler_passes_a_line_exactly_and_streams():
    # Linear interpolation of a line is exact and the kernel is symmetric: y(t_j) = a t_j + b, no delay.
    rng = np.random.default_rng(8)
    t = 1.7e9 + np.cumsum(rng.uniform(0.002, 0.02, 3000))
    x = np.stack([3.0 * (t - 1.7e9) - 1.0, np.full_like(t, 2.5)], axis=1)
    r = UniformResampler(100.0, 8, design_lowpass(100.0, 8))
    tj, y = r.push(t, x)
    # Timestamps near 1.7e9 s are only good to 2.4e-7 s (float64), so the line is checked to 1e-6.
    np.testing.assert_allclose(y[:, 0], 3.0 * (tj - 1.7e9) - 1.0, atol=1e-6)
    np.testing.assert_allclose(y[:, 1], 2.5, atol=1e-12)
    np.testing.assert_allclose(np.diff(tj), 0.01, atol=1e-6)
    assert tj[0] - t[0] >= r.latency_s - 1e-9 and tj[-1] + r.latency_s <= t[-1] + 1e-9
    r2 = UniformResampler(100.0, 8, design_lowpass(100.0, 8))
    parts = [r2.push(t[i: i + 7], x[i: i + 7]) for i in range(0, len(t), 7)]
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), y, atol=1e-9)


def test_gap_starts_a_new_segment():
    cfg = config()
    a = intel_like(600, seed=9)
    b = intel_like(600, seed=10, t0=a.time[-1] + 2.0)  # 2 s of silence, max_gap_s = 0.5
    pipe = build_pipeline(cfg).fit(concat([a, b]))
    ends, x = pipe.transform_timed(concat([a, b]))
    ends_a, xa = pipe.transform_timed(a)
    ends_b, xb = pipe.transform_timed(b)
    # Nothing is interpolated across the gap: the recording is exactly its two halves.
    np.testing.assert_array_equal(x, np.concatenate([xa, xb]))
    np.testing.assert_array_equal(ends, np.concatenate([ends_a, ends_b]))
    window_s = (cfg.window.length - 1) / cfg.resample.rate_hz
    assert not np.any((ends - window_s < b.time[0]) & (ends > a.time[-1]))
    # A gap shorter than max_gap_s is bridged.
    c = intel_like(600, seed=10, t0=a.time[-1] + 0.3)
    assert len(pipe.transform(concat([a, c]))) > len(pipe.transform(a)) + len(pipe.transform(c))


def test_filter_design_meets_its_stopband():
    taps = design_lowpass(50.0, 8, atten_db=70.0)
    assert len(taps) % 2 == 1 and abs(taps.sum() - 1) < 1e-12
    np.testing.assert_array_equal(taps, taps[::-1])
    spectrum = np.abs(np.fft.rfft(taps, 1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, 1 / 400.0)
    assert 20 * np.log10(spectrum[freqs >= 25.0].max()) < -69.0
    assert np.abs(20 * np.log10(spectrum[freqs <= 20.0])).max() < 0.01


# ---------------------------------------------------------------- streams, config, imports


def test_split_streams_and_router():
    macs = [mac_to_int("00:00:00:00:00:01"), mac_to_int("00:00:00:00:00:02")]
    parts = [intel_like(500, seed=11 + i, mac=m) for i, m in enumerate(macs)]
    mixed = concat(parts)
    order = np.argsort(mixed.time, kind="stable")
    mixed = mixed.select(order)
    streams = split_streams(mixed)
    assert list(streams) == sorted(streams, key=lambda k: np.flatnonzero(mixed.mac == k.mac)[0])
    assert {k.mac for k in streams} == set(macs) and all(k.core == -1 for k in streams)
    for k, part in zip(sorted(streams), parts):
        np.testing.assert_array_equal(streams[k].time, part.time)
    pipe = build_pipeline(config()).fit(mixed)
    with pytest.raises(ValueError, match="split_streams"):
        pipe.transform(mixed)
    router = StreamRouter(pipe.config)
    got = []
    for i in range(0, len(mixed), 37):
        got += router.push(mixed.select(slice(i, i + 37)))
    got += router.flush()
    for k, part in zip(sorted(streams), parts):
        mine = np.stack([w for key, _, w in got if key == k])
        np.testing.assert_allclose(mine, pipe.transform(part), atol=1e-6)
    assert str(StreamKey(macs[0], 1, 0)) == "00:00:00:00:00:01/core1/ss0"


def test_config_json_round_trip():
    cfg = config(features=("amplitude", "conj"), agc="rssi", drop_pilots=True,
                 hampel=HampelConfig(enabled=False, half_window=3, n_sigma=2.5),
                 outliers=OutlierConfig(method="isolation_forest", contamination=0.1))
    fitted = build_pipeline(cfg).fit(intel_like(800, seed=12)).config
    assert fitted.fitted and fitted.subcarriers is not None and len(fitted.normalise.mean) == 3 * 28 + 2 * 2 * 28  # pilots 7, 21 dropped
    text = fitted.to_json()
    back = PipelineConfig.from_json(text)
    assert back == fitted
    assert json.loads(text)["version"] == 1
    b = intel_like(400, seed=13)
    np.testing.assert_array_equal(build_pipeline(text).transform(b), build_pipeline(fitted).transform(b))
    data = json.loads(text)
    with pytest.raises(ValueError, match="version"):
        PipelineConfig.from_dict({**data, "version": 99})
    with pytest.raises(ValueError, match="unknown fields"):
        PipelineConfig.from_dict({**data, "resample": {**data["resample"], "upsampel": 3}})
    with pytest.raises(ValueError, match="feature kind"):
        PipelineConfig(features=("amplitude", "doppler"))


def test_unfitted_pipeline_explains_what_is_missing():
    with pytest.raises(ValueError, match="taps"):
        Pipeline(PipelineConfig()).fit(intel_like(300))
    with pytest.raises(ValueError, match="not fitted"):
        build_pipeline(replace(config(), subcarriers=(1, 3), n_rx=3, n_tx=1)).transform(intel_like(300))
    with pytest.raises(ValueError, match="lacks subcarriers"):
        cfg = replace(config(normalise=NormaliseConfig(enabled=False)), subcarriers=(0, 2), n_rx=3, n_tx=1)
        build_pipeline(cfg).transform(intel_like(300))


def test_outlier_removal_mad_and_isolation_forest():
    rng = np.random.default_rng(14)
    windows = rng.normal(size=(200, 20, 6))
    windows[[5, 50, 150]] += 8.0  # broken windows: every feature shifted
    for method in ("mad", "isolation_forest"):
        keep = inlier_mask(windows, OutlierConfig(method=method, threshold=3.5, contamination=0.02))
        assert not keep[[5, 50, 150]].any(), method
        assert keep.sum() >= 190, method
    groups = np.repeat([0, 1], 100)
    shifted = windows.copy()
    shifted[100:] += 3.0  # a second location with another level is not an outlier within its group
    keep = inlier_mask(shifted, OutlierConfig(method="mad"), groups=groups)
    assert not keep[[5, 50, 150]].any() and keep.sum() >= 190
    assert inlier_mask(windows, OutlierConfig()).all()


def test_gateway_import_needs_no_scipy_torch_onnx(tmp_path):
    cfg = build_pipeline(config(features=("amplitude", "phase"))).fit(intel_like(600, seed=15)).config
    (tmp_path / "pipeline.json").write_text(cfg.to_json())
    code = f"""
import sys, numpy as np
from edgecsi.edge.pipeline import PipelineConfig, build_pipeline
from edgecsi.frames import make_batch
cfg = PipelineConfig.from_json(open({str(tmp_path / 'pipeline.json')!r}).read())
pipe = build_pipeline(cfg)
n = 400
t = 1000 + np.arange(n) * 0.01
csi = np.exp(1j * np.arange(n * 90).reshape(n, 3, 1, 30) * 0.01)
sc = {[int(s) for s in INTEL_SC]}
batch = make_batch(format="t", chip="t", subcarriers=sc, csi=csi, time=t)
live = pipe.streaming()
x = pipe.transform(batch)
assert x.shape[1:] == (50, 180) and len(x) > 0, x.shape
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "torch", "onnx", "sklearn"))
print("HEAVY", heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_median_network_is_the_median():
    from edgecsi.edge.pipeline.hampel import _median_of, median_network

    rng = np.random.default_rng(16)
    assert len(median_network(11)) == 32
    for n in range(1, 24, 2):
        v = rng.integers(0, 4, size=(n, 50)).astype(float)  # many ties
        np.testing.assert_array_equal(_median_of(list(v)), np.median(v, axis=0))


def test_clock_reset_restarts_the_stream_instead_of_dropping_it():
    a = intel_like(500, seed=17, t0=5000.0)
    b = intel_like(500, seed=18, t0=10.0)  # the device rebooted: its clock starts again near 0
    pipe = build_pipeline(config()).fit(a)
    live = pipe.streaming()
    got = live.push(concat([a, b])) + live.flush()
    expected = np.concatenate([pipe.transform(a), pipe.transform(b)])
    np.testing.assert_array_equal(np.stack([w for _, w in got]), expected)
    assert live.clock_resets == 1 and live.out_of_order == 0
