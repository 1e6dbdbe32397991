"""``simulate(scenario, fmt=..., seconds=..., rate_hz=..., seed=...)``: a labelled CSIBatch.

Pipeline per run: packet schedule (jitter, losses) -> people and their motion ->
multipath channel at each packet time -> receiver phase errors, noise, AGC -> the
chip's number format and dead bins -> :class:`~edgecsi.frames.CSIBatch` whose layout
matches what the chip's reader returns, plus per-packet labels.

Deterministic: every random part draws from its own stream spawned from ``seed``, so
changing e.g. the loss rate does not move the people.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecsi.frames import CSIBatch, make_batch, mac_to_int
from edgecsi.training.simulate import impairments as imp_
from edgecsi.training.simulate.bodies import CARRY_KINDS
from edgecsi.training.simulate.channel import channel_response
from edgecsi.training.simulate.chips import ChipProfile, chip_profile
from edgecsi.training.simulate.dead_bins import fill_dead_bins
from edgecsi.training.simulate.quantize import quantize
from edgecsi.training.simulate.scenarios import ACTIVITIES, SCENARIOS, SCENE_KIND, build_cast, labels_for
from edgecsi.training.simulate.scene import VARIANTS, make_scene
from edgecsi.training.simulate.timing import schedule

DEFAULT_MAC = "02:00:5e:c5:1a:01"  # locally administered: no real vendor
DEFAULT_START_TIME = 1_700_000_000.0
EIRP_DBM = 8.0  # transmit power + antenna gains - cable losses
_STREAMS = ("cast", "timing", "phase", "noise", "agc", "rssi", "dead_bins")


@dataclass
class SimResult:
    """A simulated capture.

    batch   the CSI, laid out as the chip's reader would return it
    labels  per-packet label columns, each aligned with the batch rows (see
            :func:`edgecsi.training.simulate.scenarios.labels_for`)
    meta    scenario, parameters, label vocabularies, scene, doorway passes
    """

    batch: CSIBatch
    labels: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    @property
    def chip(self) -> ChipProfile:
        return chip_profile(self.meta["fmt"])


def simulate(scenario: str, *, fmt: str = "esp32", seconds: float = 10.0, rate_hz: float = 100.0, seed: int = 0,
             room: str = "base", people: int = 3, carry: str = "random", snr_db: float | None = None,
             loss: float = 0.02, jitter: float = 0.05, random_phase: bool = True, mac: str = DEFAULT_MAC,
             start_time: float = DEFAULT_START_TIME, max_order: int = 2) -> SimResult:
    """Simulate ``seconds`` of CSI of ``scenario`` as chip ``fmt`` reports it.

    room      ``"base"`` or ``"changed"`` (a second domain: other walls, furniture, placement)
    people    number of persons for ``crowd``
    carry     doorway walkers' object: ``"none"``, ``"metal"``, ``"liquid"`` or ``"random"`` per pass
    snr_db    CSI estimation SNR; default: the chip's typical value
    loss      long-run packet loss rate (bursty); ``jitter`` send-time spread / period
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    if room not in VARIANTS:
        raise ValueError(f"room must be one of {VARIANTS}, got {room!r}")
    chip = chip_profile(fmt)
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    scene = make_scene(SCENE_KIND[scenario], room)
    imp = imp_.Impairments(snr_db=chip.snr_db if snr_db is None else snr_db, agc_step_db=chip.agc_step_db,
                           random_phase=random_phase)

    sched = schedule(seconds, rate_hz, rngs["timing"], jitter=jitter, loss=loss)
    t = sched.time
    cast = build_cast(scenario, scene, seconds, rngs["cast"], people=people, carry=carry)
    h = channel_response(scene, cast.persons, t, chip.frequencies_hz, max_order=max_order)

    used = ~chip.invalid_mask
    h = h * imp_.phase_errors(t, chip.subcarriers, chip.bandwidth_mhz, imp, rngs["phase"])[:, None, None, :]
    h, noise_std = imp_.add_noise(h, used, imp.snr_db, rngs["noise"])
    power_db = 20 * np.log10(np.maximum(imp_.rms_over(h, used), 1e-30))
    gain_db = imp_.agc_gain_db(power_db, 20 * np.log10(chip.target_rms), imp, rngs["agc"])
    gain = 10 ** (gain_db / 20)
    csi = quantize(h * gain[:, None, None, None], chip.value_kind)
    fill_dead_bins(csi, chip, noise_std * float(np.median(gain)), rngs["dead_bins"])

    batch = make_batch(
        format=chip.batch_format, chip=chip.chip, subcarriers=chip.subcarriers, csi=csi,
        invalid=chip.invalid_mask, time=np.round(start_time + t, 6),  # capture files keep microseconds
        mac=np.full(len(t), mac_to_int(mac), dtype=np.uint64),
        seq=sched.seq, rssi=imp_.rssi_dbm(power_db, EIRP_DBM, imp, rngs["rssi"]),
        noise=_noise_floor(chip, len(t), rngs["rssi"]), channel=np.full(len(t), chip.channel),
        bandwidth_mhz=np.full(len(t), chip.bandwidth_mhz),
        core=np.full(len(t), -1 if chip.is_esp32 else 0),
        stream=np.full(len(t), -1 if chip.is_esp32 else 0),
        extra=_device_fields(chip, len(t)),
    )
    meta = {
        "scenario": scenario, "fmt": fmt, "chip": chip.chip, "format": chip.batch_format, "seed": seed,
        "seconds": seconds, "rate_hz": rate_hz, "room": room, "scene": scene.describe(),
        "people": len(cast.persons), "carry": carry,  # doorway: one walker per pass
        "snr_db": imp.snr_db, "loss": loss, "jitter": jitter, "packets_sent": sched.sent,
        "packets_received": len(t), "start_time": start_time,
        "label_names": {"activity": list(ACTIVITIES), "carry": list(CARRY_KINDS)},
        "passes": cast.passes,
    }
    return SimResult(batch=batch, labels=labels_for(cast, scene, t), meta=meta)


def _device_fields(chip: ChipProfile, n: int) -> dict[str, np.ndarray]:
    """ESP32 rx_ctrl fields the line writers print: HT20 frames, no secondary channel, a
    256-byte buffer (L-LTF + HT-LTF) of which the tool prints the L-LTF, first word garbage."""
    if not chip.is_esp32:
        return {}
    fields = {"sig_mode": 1, "cwb": 0, "stbc": 0, "secondary_channel": 0, "len": 256, "mcs": 7,
              "first_word_invalid": 1, "real_time_set": 1, "sig_len": 114}
    return {k: np.full(n, v, dtype=np.int16) for k, v in fields.items()}


def _noise_floor(chip: ChipProfile, n: int, rng: np.random.Generator) -> np.ndarray:
    """ESP32 reports a noise floor (dBm, around -95); Nexmon does not."""
    if not chip.is_esp32:
        return np.full(n, np.nan)
    return np.round(rng.normal(-96.0, 1.0, n))
