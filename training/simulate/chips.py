"""What each simulated chip reports: subcarrier grid, dead bins, number format, scale.

One :class:`ChipProfile` per ``fmt`` the simulator accepts. The profile says what a
reader of that chip's real output produces (csi-formats spec sections 0-3): the
subcarrier vector in natural order, which bins carry no channel estimate, which
bins the firmware overwrites with something else, and how values are stored
(ESP32 int8 pairs, Nexmon int14-in-int16, Nexmon packed float), so a simulated
batch looks like one read from a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecsi.firmware_bridge import ofdm

SUBCARRIER_SPACING_HZ = 312.5e3

#: Value formats: int8 (ESP32 (imag, real) byte pairs), int14 (Nexmon int16 chips store
#: sign-extended 14-bit parts), float12e6 (bcm4366c0 packed float: 12-bit signed
#: mantissas sharing a 6-bit exponent).
VALUE_KINDS = ("int8", "int14", "float12e6")


@dataclass(frozen=True)
class ChipProfile:
    """How one chip/firmware reports CSI.

    ``artefact_bins`` are subcarriers that hold firmware bytes instead of CSI (ESP32
    first word, Nexmon PHY-status words); ``target_rms`` is the CSI magnitude the
    receiver's AGC aims for in the chip's own units (what real captures show).
    """

    fmt: str  # the simulator's name for it
    batch_format: str  # CSIBatch.format the chip's reader gives ("nexmon", "esp32-csi-tool")
    chip: str  # CSIBatch.chip the reader gives
    bandwidth_mhz: int
    channel: int  # primary channel (ESP32) or center channel (Nexmon), as the chip reports it
    center_hz: float  # RF frequency of subcarrier 0
    value_kind: str
    target_rms: float
    snr_db: float  # typical CSI estimation SNR
    agc_step_db: float
    legacy_ltf: bool  # ESP32 prints the L-LTF: legacy nulls (+-26)
    artefact_bins: tuple[int, ...]
    null_fill: str  # "zero" (ESP32 prints 0) or "noise" (Nexmon guards hold arbitrary values)

    @property
    def is_esp32(self) -> bool:
        return self.chip == "esp32"

    @property
    def nfft(self) -> int:
        return ofdm.NFFT_BY_BW[self.bandwidth_mhz]

    @property
    def subcarriers(self) -> np.ndarray:
        """int16[subcarrier], natural order -N/2 .. N/2-1."""
        return ofdm.natural_indices(self.nfft)

    @property
    def null_mask(self) -> np.ndarray:
        """bool[subcarrier]: guard and DC bins (no channel estimate at all)."""
        return ofdm.null_mask(self.subcarriers, self.bandwidth_mhz, legacy=self.legacy_ltf)

    @property
    def artefact_mask(self) -> np.ndarray:
        return np.isin(self.subcarriers.astype(np.int32), self.artefact_bins)

    @property
    def invalid_mask(self) -> np.ndarray:
        """bool[subcarrier]: what a reader marks invalid (nulls plus firmware artefacts)."""
        return self.null_mask | self.artefact_mask

    @property
    def frequencies_hz(self) -> np.ndarray:
        """float64[subcarrier]: RF frequency of each bin."""
        return self.center_hz + self.subcarriers.astype(np.float64) * SUBCARRIER_SPACING_HZ


def _chan_5g(channel: int) -> float:
    return (5000.0 + 5.0 * channel) * 1e6


CHIPS: dict[str, ChipProfile] = {
    # ESP32 classic, HT20 on 2.4 GHz channel 6, secondary channel none: the tool prints the
    # 64-entry L-LTF in FFT order; the first word (subcarriers 0 and +1) is garbage.
    "esp32": ChipProfile(
        fmt="esp32", batch_format="esp32-csi-tool", chip="esp32", bandwidth_mhz=20, channel=6,
        center_hz=2437e6, value_kind="int8", target_rms=20.0, snr_db=24.0, agc_step_db=1.0,
        legacy_ltf=True, artefact_bins=(0, 1), null_fill="zero"),
    # Raspberry Pi 3B+/4 nexmon_csi, new header layout, 80 MHz on channel 42 (5210 MHz);
    # words 0..2 (subcarriers 0, +1, +2) carry PhyRxStatus (spec 3.4).
    "nexmon-43455c0": ChipProfile(
        fmt="nexmon-43455c0", batch_format="nexmon", chip="43455c0", bandwidth_mhz=80, channel=42,
        center_hz=_chan_5g(42), value_kind="int14", target_rms=900.0, snr_db=28.0, agc_step_db=1.5,
        legacy_ltf=False, artefact_bins=(0, 1, 2), null_fill="noise"),
    # Nexus 5, int16 like the 43455c0.
    "nexmon-4339": ChipProfile(
        fmt="nexmon-4339", batch_format="nexmon", chip="4339", bandwidth_mhz=80, channel=42,
        center_hz=_chan_5g(42), value_kind="int14", target_rms=900.0, snr_db=28.0, agc_step_db=1.5,
        legacy_ltf=False, artefact_bins=(0, 1, 2), null_fill="noise"),
    # ASUS RT-AC86U, packed float; exact magnitudes up to ~6 in real captures.
    "nexmon-4366c0": ChipProfile(
        fmt="nexmon-4366c0", batch_format="nexmon", chip="4366c0", bandwidth_mhz=80, channel=106,
        center_hz=_chan_5g(106), value_kind="float12e6", target_rms=1.5, snr_db=30.0, agc_step_db=1.5,
        legacy_ltf=False, artefact_bins=(0, 1, 2), null_fill="noise"),
}


def chip_profile(fmt: str) -> ChipProfile:
    try:
        return CHIPS[fmt]
    except KeyError:
        raise ValueError(f"unknown simulator format {fmt!r}; known: {', '.join(CHIPS)}") from None
