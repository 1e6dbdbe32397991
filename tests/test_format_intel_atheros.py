"""Intel 5300 (Linux 802.11n CSI Tool) and Atheros CSI Tool ``.dat`` readers.

Real captures from ../shared/captures/{intel5300,atheros} are checked against
reference.json (csiread 1.4.1, CSIKit 2.5), the official MATLAB output
(read_bf_file + get_scaled_csi, saved as .mat) and csiread run here on the
same files. Where a reference parser is wrong the test says which and why:

- csiread.Intel applies the antenna permutation even when Nrx == 1 and never
  checks it (read_bf_file.m does neither);
- csiread.Atheros maps bit-stream element j to [rx=j//nc, tx=j%nc]; the
  stream is tone -> tx -> rx (read_csi.c), so its rx/tx are scrambled for MIMO;
- CSIKit's ATHBeamformReader adds +1 to every real and imaginary value.

Synthetic records are built here by independent encoders (Python integers,
bit by bit), and mangled input (random bytes, truncation, corrupted length
fields) must only ever raise ParseError.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge import read
from edgecsi.firmware_bridge.formats import atheros, intel5300
from edgecsi.frames import mac_to_int, mac_to_str

INTEL_FILES = ("csikit_example.dat", "sample_0x1_ap.dat", "sample_0x5_64_3000.dat")
ATHEROS_FILE = "ath_csi_1.dat"
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ----------------------------------------------------------------------------- fixtures

def captures(shared_dir, source: str):
    path = shared_dir / "captures" / source
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def intel_dir(shared_dir):
    return captures(shared_dir, "intel5300")


@pytest.fixture(scope="module")
def atheros_dir(shared_dir):
    return captures(shared_dir, "atheros")


@pytest.fixture(scope="module")
def intel_reference(intel_dir):
    doc = json.loads((intel_dir / "reference.json").read_text())
    return {entry["file"]: entry for entry in doc["files"]}


@pytest.fixture(scope="module")
def atheros_reference(atheros_dir):
    doc = json.loads((atheros_dir / "reference.json").read_text())
    return doc["files"][0]


def complexes(pairs) -> np.ndarray:
    return np.array([complex(re, im) for re, im in pairs])


def in_file_order(capture) -> tuple[np.ndarray, list]:
    """All packets of a capture in file order: (packet_index array, [(batch, row)])."""
    pairs = capture.in_order()
    return np.array([int(b.packet_index[i]) for b, i in pairs]), pairs


# ----------------------------------------------------------------------------- Intel encoders (independent code)

def pack_bfee(chain_values: np.ndarray) -> bytes:
    """int[30, Nrx*Ntx, 2] (subcarrier, j = rx*Ntx + tx in RF-chain order, re/im) -> packed CSI bytes.

    read_bfee.c: per subcarrier 3 skipped bits, then 8 bits real and 8 bits
    imag per element, LSB first.
    """
    m = chain_values.shape[1]
    acc, bit = 0, 0
    for sc in range(30):
        bit += 3
        for j in range(m):
            for part in (0, 1):
                acc |= (int(chain_values[sc, j, part]) & 0xFF) << bit
                bit += 8
    return acc.to_bytes(60 * m + 12, "little")


def bfee_record(chain_values: np.ndarray, n_rx: int, n_tx: int, *, timestamp: int = 1000, bfee_count: int = 1,
                rssi=(30, 31, 32), noise: int = -90, agc: int = 30, antenna_sel: int = 0b100100,
                rate: int = 0x101, length: int | None = None) -> bytes:
    payload = pack_bfee(chain_values)
    body = struct.pack("<IHxxBBBBBbBBHH", timestamp, bfee_count, n_rx, n_tx, *rssi, noise, agc, antenna_sel,
                       len(payload) if length is None else length, rate) + payload
    return struct.pack(">HB", len(body) + 1, 0xBB) + body


def mac_frame_record(addr2: str, seq_ctrl: int, payload: bytes = b"\xaa" * 20) -> bytes:
    body = struct.pack("<HH6s6s6sH", 0x0208, 0, b"\xff" * 6, mac_to_int(addr2).to_bytes(6, "big"),
                       b"\x01" * 6, seq_ctrl) + payload
    return struct.pack(">HB", len(body) + 1, 0xC1) + body


def random_chain_values(rng: np.random.Generator, n_rx: int, n_tx: int) -> np.ndarray:
    return rng.integers(-128, 128, size=(30, n_rx * n_tx, 2))


def expected_csi(chain_values: np.ndarray, n_rx: int, n_tx: int, antenna_sel: int) -> np.ndarray:
    """complex[rx, tx, subcarrier] as read_bf_file.m leaves it (valid perms only, Nrx > 1)."""
    chains = (chain_values[..., 0] + 1j * chain_values[..., 1]).reshape(30, n_rx, n_tx).transpose(1, 2, 0)
    perm = [(antenna_sel >> (2 * k)) & 3 for k in range(n_rx)]
    if n_rx == 1 or sorted(perm) != list(range(n_rx)):
        return chains
    out = np.empty_like(chains)
    for k in range(n_rx):
        out[perm[k]] = chains[k]
    return out


# ----------------------------------------------------------------------------- Intel: real captures

@pytest.mark.parametrize("name", INTEL_FILES)
def test_intel_capture_matches_reference_json(intel_dir, intel_reference, name):
    ref = intel_reference[name]["parsers"]["csiread.Intel"]
    first = ref["first_packet"]
    capture = read(intel_dir / name)  # detected, not forced
    assert capture.format == "intel5300" and capture.bad.total == 0
    b = capture.batch
    csikit = intel_reference[name]["parsers"]["CSIKit.IWLBeamformReader(scaled=False)"]
    assert len(b) == ref["count_0xbb"] == csikit["frames"]
    assert b.csi.shape == (ref["count_0xbb"], first["Nrx"], first["Ntx"], 30) and b.csi.dtype == np.complex64
    assert b.extra["timestamp_low"][0] == first["timestamp_low"]
    assert b.extra["bfee_count"][0] == first["bfee_count"]
    assert list(b.extra["rssi_chain"][0]) == [first["rssi_a"], first["rssi_b"], first["rssi_c"]]
    assert b.extra["agc"][0] == first["agc"]
    assert list(b.extra["perm"][0]) == first["perm"]
    assert hex(b.extra["rate"][0]) == first["rate"]
    assert b.noise[0] == (first["noise"] if first["noise"] != -127 else pytest.approx(np.nan, nan_ok=True))
    # rssi is get_total_rss.m. reference.json's total_rss_dbm is csiread's get_total_rss() called after
    # get_scaled_csi(), which had already stored the RSS; csiread then adds the chain powers onto that
    # stored dBm value instead of onto 0 (state bug), i.e. 10*log10(mag + rss) - 44 - agc:
    chains = np.array([first["rssi_a"], first["rssi_b"], first["rssi_c"]], dtype=float)
    mag = (10 ** (chains[chains != 0] / 10)).sum()
    total_rss = 10 * np.log10(mag) - 44 - first["agc"]
    assert b.rssi[0] == pytest.approx(total_rss, abs=1e-4)  # float32 column
    assert first["total_rss_dbm"] == pytest.approx(10 * np.log10(mag + total_rss) - 44 - first["agc"], abs=1e-9)
    assert b.time[0] == pytest.approx(first["timestamp_low"] * 1e-6)
    # csiread's csi is [packet, subcarrier, rx, tx]: csi[0, 0, 0:3, 0] and csi[0, 1, 0, 0]
    raw = [b.csi[0, 0, 0, 0], b.csi[0, 1, 0, 0], b.csi[0, 2, 0, 0], b.csi[0, 0, 0, 1]]
    np.testing.assert_array_equal(raw, complexes(ref["first4_csi[0,0:3,0]+csi[0,1,0,0]"]))
    scaled = read(intel_dir / name, scaled=True).batch.csi
    got = [scaled[0, 0, 0, 0], scaled[0, 1, 0, 0], scaled[0, 2, 0, 0], scaled[0, 0, 0, 1]]
    np.testing.assert_allclose(got, complexes(ref["first4_scaled[0,0:3,0]+scaled[0,1,0,0]"]), rtol=1e-5)
    np.testing.assert_array_equal(b.subcarriers, intel5300.SUBCARRIERS_20MHZ)
    assert (b.bandwidth_mhz == 20).all() and not b.invalid.any()


@pytest.mark.parametrize("name", INTEL_FILES)
def test_intel_capture_equals_csiread_on_every_packet(intel_dir, name):
    csiread = pytest.importorskip("csiread")
    def fresh():
        # csiread 1.4.1 keeps the RSS between calls: get_total_rss and get_scaled_csi each need a new reader.
        reader = csiread.Intel(str(intel_dir / name), nrxnum=3, ntxnum=3, if_report=False)
        reader.read()
        return reader

    ref = fresh()
    ref_rss = ref.get_total_rss()
    ref_scaled = fresh().get_scaled_csi()
    b = intel5300.read((intel_dir / name).read_bytes(), source=name).batch
    n_rx, n_tx = b.n_rx, b.n_tx
    # All sample packets have Nrx = 3 and a valid perm, where csiread and MATLAB agree.
    assert (ref.Nrx == 3).all() and b.extra["perm_applied"].all()
    np.testing.assert_array_equal(b.csi, ref.csi[:, :, :n_rx, :n_tx].transpose(0, 2, 3, 1))
    scaled = intel5300.read((intel_dir / name).read_bytes(), scaled=True).batch.csi
    np.testing.assert_allclose(scaled, ref_scaled[:, :, :n_rx, :n_tx].transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.rssi, ref_rss, rtol=1e-6)
    np.testing.assert_array_equal(b.extra["timestamp_low"], ref.timestamp_low)
    np.testing.assert_array_equal(b.extra["bfee_count"], ref.bfee_count)
    np.testing.assert_array_equal(b.extra["agc"], ref.agc)
    np.testing.assert_array_equal(b.extra["perm"], ref.perm)
    np.testing.assert_array_equal(b.extra["rate"], ref.rate)
    np.testing.assert_array_equal(np.nan_to_num(b.noise, nan=-127), ref.noise)


def test_intel_capture_equals_matlab_read_bf_file_and_get_scaled_csi(intel_dir, intel_reference):
    scipy_io = pytest.importorskip("scipy.io")
    mat = scipy_io.loadmat(str(intel_dir / "matlab_reference" / "csikit_example.mat"))
    raw = intel5300.read((intel_dir / "csikit_example.dat").read_bytes()).batch
    scaled = intel5300.read((intel_dir / "csikit_example.dat").read_bytes(), scaled=True).batch
    cells = mat["csi"][:, 0]
    assert len(cells) == len(raw) == intel_reference["csikit_example.dat"]["matlab_reference"]["cells"]
    for i, cell in enumerate(cells):
        field = {name: cell[name][0, 0] for name in cell.dtype.names}
        # MATLAB: csi is Ntx x Nrx x 30, perm 1-based.
        np.testing.assert_array_equal(raw.csi[i], field["csi"].transpose(1, 0, 2))
        np.testing.assert_allclose(scaled.csi[i], mat["csi_scaled"][i, 0].transpose(1, 0, 2), rtol=1e-5, atol=1e-6)
        assert raw.extra["timestamp_low"][i] == field["timestamp_low"].item()
        assert raw.extra["bfee_count"][i] == field["bfee_count"].item()
        assert list(raw.extra["rssi_chain"][i]) == [field[k].item() for k in ("rssi_a", "rssi_b", "rssi_c")]
        assert raw.noise[i] == field["noise"].item() and raw.extra["agc"][i] == field["agc"].item()
        assert list(raw.extra["perm"][i] + 1) == list(field["perm"].ravel())
        assert raw.extra["rate"][i] == field["rate"].item()


def test_intel_mac_frames_give_source_and_sequence(intel_dir, intel_reference):
    """sample_0x5 (connector_log 0x5): a 0xC1 frame record before each 0xBB; injected frames from 00:16:ea:12:34:56."""
    b = read(intel_dir / "sample_0x5_64_3000.dat").batch
    assert len(b) == intel_reference["sample_0x5_64_3000.dat"]["parsers"]["csiread.Intel"]["count_0xc1"]
    assert b.macs() == ["00:16:ea:12:34:56"] and (b.seq == 0).all()
    assert np.isnan(b.noise).all()  # the NIC reported -127 (unknown) throughout
    no_frames = read(intel_dir / "sample_0x1_ap.dat").batch
    assert (no_frames.mac == 0).all() and (no_frames.seq == -1).all()


def test_intel_time_unwraps_timestamp_low(intel_dir):
    b = read(intel_dir / "sample_0x1_ap.dat").batch
    assert (np.diff(b.time) > 0).all()
    rng = np.random.default_rng(1)
    stamps = [2**32 - 300, 2**32 - 100, 50, 400]  # the 32-bit microsecond clock wraps between packets 2 and 3
    data = b"".join(bfee_record(random_chain_values(rng, 1, 1), 1, 1, timestamp=t) for t in stamps)
    got = intel5300.read(data).batch
    np.testing.assert_allclose(got.time - got.time[0], np.array([0, 200, 350, 700]) * 1e-6)
    np.testing.assert_array_equal(got.extra["timestamp_low"], stamps)


# ----------------------------------------------------------------------------- Intel: synthetic records

@settings(max_examples=60, deadline=None)
@given(n_rx=st.integers(1, 3), n_tx=st.integers(1, 3), antenna_sel=st.integers(0, 63), ht40=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_intel_bit_unpacking_and_permutation_roundtrip(n_rx, n_tx, antenna_sel, ht40, seed):
    rng = np.random.default_rng(seed)
    values = [random_chain_values(rng, n_rx, n_tx) for _ in range(3)]
    data = b"".join(bfee_record(v, n_rx, n_tx, antenna_sel=antenna_sel, rate=0x101 | (0x800 * ht40))
                    for v in values)
    b = intel5300.read(data).batch
    assert b.csi.shape == (3, n_rx, n_tx, 30)
    for i, v in enumerate(values):
        np.testing.assert_array_equal(b.csi[i], expected_csi(v, n_rx, n_tx, antenna_sel))
    perm = [(antenna_sel >> (2 * k)) & 3 for k in range(n_rx)]
    assert b.extra["perm_applied"][0] == (n_rx > 1 and sorted(perm) == list(range(n_rx)))
    assert (b.bandwidth_mhz == (40 if ht40 else 20)).all()
    np.testing.assert_array_equal(b.subcarriers,
                                  intel5300.SUBCARRIERS_40MHZ if ht40 else intel5300.SUBCARRIERS_20MHZ)


def test_intel_every_layout_equals_csiread_including_3x3_and_ntx3_scaling(tmp_path):
    """Nrx, Ntx = 1..3 in one file (the samples only have 3x1 and 3x2): split into batches, each equal to csiread."""
    csiread = pytest.importorskip("csiread")
    rng = np.random.default_rng(7)
    layouts = [(r, t) for r in (1, 2, 3) for t in (1, 2, 3)]
    # perms that csiread and MATLAB read alike: identity for Nrx=1, a true permutation otherwise
    sel = {1: 0b111000, 2: 0b110001, 3: 0b000110}
    values = [random_chain_values(rng, r, t) for r, t in layouts]
    data = b"".join(bfee_record(v, r, t, antenna_sel=sel[r], noise=-127 if r == 2 else -85, timestamp=1000 + i,
                                rssi=(40, 0, 35))
                    for i, (v, (r, t)) in enumerate(zip(values, layouts)))
    path = tmp_path / "layouts.dat"
    path.write_bytes(data)
    ref = csiread.Intel(str(path), nrxnum=3, ntxnum=3, if_report=False)
    ref.read()
    ref_scaled = ref.get_scaled_csi()
    capture = read(path)
    scaled = read(path, scaled=True)
    assert len(capture.batches) == len(layouts) and capture.n_packets == len(layouts)
    order, pairs = in_file_order(capture)
    np.testing.assert_array_equal(order, np.arange(len(layouts)))
    scaled_pairs = scaled.in_order()
    for i, ((b, row), (sb, srow), (r, t)) in enumerate(zip(pairs, scaled_pairs, layouts)):
        assert (b.n_rx, b.n_tx) == (r, t)
        np.testing.assert_array_equal(b.csi[row], ref.csi[i, :, :r, :t].transpose(1, 2, 0))
        np.testing.assert_array_equal(b.csi[row], expected_csi(values[i], r, t, sel[r]))
        np.testing.assert_allclose(sb.csi[srow], ref_scaled[i, :, :r, :t].transpose(1, 2, 0), rtol=1e-5, atol=1e-6)


def test_intel_nrx1_perm_where_csiread_is_wrong(tmp_path):
    """csiread applies perm even for Nrx = 1: the single chain lands on rx 2 and rx 0 stays zero.

    read_bf_file.m skips the permutation for one antenna, and so do we.
    """
    csiread = pytest.importorskip("csiread")
    rng = np.random.default_rng(3)
    values = random_chain_values(rng, 1, 2)
    values[0, 0] = (5, 6)  # never all-zero on rx 0
    path = tmp_path / "nrx1.dat"
    path.write_bytes(bfee_record(values, 1, 2, antenna_sel=0b000110))  # perm[0] = 2
    ref = csiread.Intel(str(path), nrxnum=3, ntxnum=3, if_report=False)
    ref.read()
    b = read(path).batch
    assert b.csi.shape == (1, 1, 2, 30) and not b.extra["perm_applied"][0]
    np.testing.assert_array_equal(b.csi[0], expected_csi(values, 1, 2, 0))
    np.testing.assert_array_equal(ref.csi[0, :, 2, :2].T, b.csi[0, 0])  # csiread: on rx index 2 ...
    assert not ref.csi[0, :, 0, :].any()  # ... and nothing on rx 0


def test_intel_invalid_perm_left_in_chain_order(tmp_path):
    """perm [1, 1, 1] passes MATLAB's sum test (1+1+1 == 0+1+2, 0-based) though it is no permutation:
    read_bf_file.m then writes every chain onto rx 2 (chain 2 is lost, chain 3 shows twice); csiread
    writes all three onto rx 1 and leaves rx 0 and rx 2 zero. We keep the chains in their order and
    say so in perm_applied."""
    csiread = pytest.importorskip("csiread")
    rng = np.random.default_rng(4)
    values = random_chain_values(rng, 3, 1)
    path = tmp_path / "perm.dat"
    path.write_bytes(bfee_record(values, 3, 1, antenna_sel=0b010101))
    b = read(path).batch
    assert list(b.extra["perm"][0]) == [1, 1, 1] and not b.extra["perm_applied"][0]
    np.testing.assert_array_equal(b.csi[0], expected_csi(values, 3, 1, 0b100100))  # chain order
    ref = csiread.Intel(str(path), nrxnum=3, ntxnum=3, if_report=False)
    ref.read()
    assert not ref.csi[0, :, 0, 0].any() and not ref.csi[0, :, 2, 0].any()


def test_intel_mac_frame_attaches_to_the_next_csi_record_only():
    rng = np.random.default_rng(5)
    v = random_chain_values(rng, 2, 1)
    data = (mac_frame_record("02:00:00:00:00:07", 0x1230) + bfee_record(v, 2, 1)
            + bfee_record(v, 2, 1)
            + struct.pack(">HB", 5, 0x42) + b"\0" * 4 + mac_frame_record("02:00:00:00:00:08", 0x1240)
            + bfee_record(v, 2, 1))
    b = intel5300.read(data).batch
    assert [mac_to_str(m) for m in b.mac] == ["02:00:00:00:00:07", "00:00:00:00:00:00", "02:00:00:00:00:08"]
    assert list(b.seq) == [0x123, -1, 0x124]
    assert intel5300.read(data).bad.total == 0  # the 0x42 record is skipped by its length, not an error


def test_intel_ht40_and_20_mhz_records_become_two_batches_in_order():
    rng = np.random.default_rng(6)
    rates = [0x101, 0x901, 0x101, 0x901, 0x901]
    values = [random_chain_values(rng, 3, 2) for _ in rates]
    data = b"".join(bfee_record(v, 3, 2, rate=r) for v, r in zip(values, rates))
    capture = intel5300.read(data)
    assert [len(b) for b in capture.batches] == [2, 3]
    assert [int(b.bandwidth_mhz[0]) for b in capture.batches] == [20, 40]
    np.testing.assert_array_equal(capture.batches[1].packet_index, [1, 3, 4])
    np.testing.assert_array_equal(capture.batches[1].subcarriers[[0, 14, 15, 29]], [-58, -2, 2, 58])


def test_intel_bad_records_are_counted_with_offsets_and_reading_goes_on(intel_dir):
    data = bytearray((intel_dir / "csikit_example.dat").read_bytes())  # 26 records of 395 bytes
    data[3 * 395 + 19] ^= 0x01  # record 3: len field no longer 60*Nrx*Ntx + 12
    data[7 * 395 + 1] ^= 0x40  # record 7: field_len broken, the chain is lost
    data += data[:200]  # a last record cut short
    capture = intel5300.read(bytes(data), source="mangled.dat")
    assert len(capture.batch) == 24
    assert capture.bad.as_dict() == {"bad_length": 2, "truncated": 1}
    assert any("mangled.dat: byte 1185: bad_length" in e for e in capture.bad.examples)
    assert any("byte 2765: bad_length" in e and "resumed at byte 3160" in e for e in capture.bad.examples)
    assert any("byte 10270: truncated" in e for e in capture.bad.examples)
    full = intel5300.read((intel_dir / "csikit_example.dat").read_bytes()).batch
    np.testing.assert_array_equal(capture.batch.csi, np.delete(full.csi, [3, 7], axis=0))
    np.testing.assert_array_equal(capture.batch.packet_index, np.arange(24))


def test_intel_corrupted_mac_frame_length_resyncs_on_the_next_csi_record(intel_dir):
    data = bytearray((intel_dir / "sample_0x5_64_3000.dat").read_bytes()[:346 * 20])  # (0xC1 131 B, 0xBB 215 B) x 20
    data[346 * 5:346 * 5 + 2] = (4000).to_bytes(2, "big")  # the 6th 0xC1 now points into CSI bytes
    capture = intel5300.read(bytes(data))
    assert len(capture.batch) == 20 and capture.bad.as_dict() == {"bad_record": 1}
    assert capture.batch.mac[5] == 0 and (np.delete(capture.batch.mac, 5) == mac_to_int("00:16:ea:12:34:56")).all()


def test_intel_walk_shortcut_for_repeated_records_changes_nothing(intel_dir):
    """The numpy shortcut over identical record cycles gives what the record-by-record walk gives."""
    for name in INTEL_FILES:
        data = (intel_dir / name).read_bytes()
        assert intel5300._walk(data, name, BadPackets()) == intel5300._walk(data, name, BadPackets(), repeats=False)
    data = bytearray((intel_dir / "sample_0x5_64_3000.dat").read_bytes())
    for at in (346 * 40 + 3, 346 * 41 + 131 + 11, 346 * 900 + 1, 346 * 2000 + 200):
        data[at] ^= 0x5A
    fast, slow = BadPackets(), BadPackets()
    assert intel5300._walk(bytes(data), "", fast) == intel5300._walk(bytes(data), "", slow, repeats=False)
    assert fast.as_dict() == slow.as_dict() and fast.total >= 2


def test_intel_sniffer(intel_dir, atheros_dir):
    for name in INTEL_FILES:
        assert intel5300.sniff((intel_dir / name).read_bytes()[:4096])
    assert not intel5300.sniff((atheros_dir / ATHEROS_FILE).read_bytes()[:4096])
    assert not intel5300.sniff(b"") and not intel5300.sniff(b"\x00\x05\xbb\x00")
    with pytest.raises(ParseError, match="not_intel5300"):
        intel5300.read(b"not a csi tool log at all", source="x.dat")


# ----------------------------------------------------------------------------- Atheros: encoder

def atheros_record(csi: np.ndarray, *, big: bool = False, timestamp: int = 5000, freq: int = 2437, rate: int = 0x8F,
                   bw: int = 0, rssi=(50, 40, 45, 30), noise_floor: int = 0, err_info: int = 0,
                   payload: bytes = b"", csi_len: int | None = None) -> bytes:
    """csi int complex[rx, tx, tones] -> one record; the stream is tone -> tx -> rx, imag then real, 10 bits each."""
    nr, nc, tones = csi.shape
    acc, bit = 0, 0
    for k in range(tones):
        for c in range(nc):
            for r in range(nr):
                for value in (int(csi[r, c, k].imag), int(csi[r, c, k].real)):
                    acc |= (value & 0x3FF) << bit
                    bit += 10
    stream = acc.to_bytes(bit // 8, "little")
    order = ">" if big else "<"
    header = struct.pack(order + "QHHBBBBBBBBBBBH", timestamp, len(stream) if csi_len is None else csi_len, freq,
                         err_info, noise_floor, rate, bw, tones, nr, nc, *rssi, len(payload))
    body = header + stream + payload
    return struct.pack(order + "H", len(body)) + body


def random_atheros_csi(rng: np.random.Generator, nr: int, nc: int, tones: int) -> np.ndarray:
    return rng.integers(-512, 512, size=(nr, nc, tones)) + 1j * rng.integers(-512, 512, size=(nr, nc, tones))


def to_big_endian(data: bytes) -> bytes:
    """Rewrite a little-endian Atheros file as a big-endian host would have logged it (CSI bytes unchanged)."""
    out, pos = bytearray(), 0
    while pos + 2 <= len(data):
        (buf_len,) = struct.unpack_from("<H", data, pos)
        fields = struct.unpack_from("<QHH11BH", data, pos + 2)
        out += struct.pack(">H", buf_len) + struct.pack(">QHH11BH", *fields) + data[pos + 27:pos + 2 + buf_len]
        pos += 2 + buf_len
    return bytes(out)


# ----------------------------------------------------------------------------- Atheros: real capture

def test_atheros_capture_matches_reference_json(atheros_dir, atheros_reference):
    ref = atheros_reference["parsers"]["csiread.Atheros(endian=little)"]
    first = ref["first_packet"]
    capture = read(atheros_dir / ATHEROS_FILE)
    assert capture.format == "atheros" and capture.bad.total == 0
    b = capture.batch
    assert len(b) == ref["count"] == atheros_reference["parsers"]["CSIKit.ATHBeamformReader"]["frames"]
    assert b.csi.shape == (401, first["nr"], first["nc"], first["num_tones"])
    np.testing.assert_array_equal(b.subcarriers, np.r_[-28:0, 1:29])
    assert b.extra["timestamp"][0] == first["timestamp"] and b.time[0] == pytest.approx(first["timestamp"] * 1e-6)
    assert b.extra["freq_mhz"][0] == first["tx_channel"] and b.channel[0] == 6
    assert b.extra["err_info"][0] == first["err_info"] and b.extra["rate"][0] == first["Rate"]
    assert b.bandwidth_mhz[0] == 20 and first["bandWidth"] == 0
    assert b.extra["rssi_combined"][0] == first["rssi"]
    assert list(b.extra["rssi_chain"][0]) == [first["rssi_1"], first["rssi_2"], first["rssi_3"]]
    assert b.rssi[0] == first["rssi"] + atheros.ATH9K_NOISE_FLOOR_DBM  # noise_floor byte is 0: ath9k default
    assert first["noise_floor"] == 0 and np.isnan(b.noise).all()
    assert b.extra["payload_len"][0] == first["payload_len"]
    # bit-stream order is tone -> tx -> rx: (tx0, rx0), (tx0, rx1), (tx0, rx2), (tx1, rx0)
    stream = [b.csi[0, 0, 0, 0], b.csi[0, 1, 0, 0], b.csi[0, 2, 0, 0], b.csi[0, 0, 1, 0]]
    np.testing.assert_array_equal(stream, complexes(ref["first4_bitstream_order"]))
    # the frame payload is an 802.11 QoS data frame: source address and sequence numbers
    assert b.macs() == ["04:f0:21:2c:79:37"]
    np.testing.assert_array_equal(b.seq[:3], [2544, 2545, 2546])


def test_atheros_csikit_adds_one_to_every_value(atheros_dir, atheros_reference):
    """CSIKit 2.5 reads each 10-bit value + 1; read_csi.c (and we, and csiread) do not."""
    b = read(atheros_dir / ATHEROS_FILE).batch
    stream = np.array([b.csi[0, 0, 0, 0], b.csi[0, 1, 0, 0], b.csi[0, 2, 0, 0], b.csi[0, 0, 1, 0]])
    csikit = complexes(atheros_reference["parsers"]["CSIKit.ATHBeamformReader"]["first4_bitstream_order"])
    np.testing.assert_array_equal(csikit, stream + (1 + 1j))


def test_atheros_equals_csiread_stream_but_csiread_scrambles_rx_and_tx(atheros_dir):
    """csiread fills csi[k, j // nc, j % nc] with stream element j, but element j is (tx = j // nr, rx = j % nr).

    Same numbers in stream order on every packet; for 3x2 MIMO its [rx, tx] labels are wrong.
    """
    csiread = pytest.importorskip("csiread")
    ref = csiread.Atheros(str(atheros_dir / ATHEROS_FILE), nrxnum=3, ntxnum=3, tones=56, if_report=False)
    ref.read(endian="little")  # never endian="big" on this file: csiread 1.4.1 segfaults
    b = read(atheros_dir / ATHEROS_FILE).batch
    n, nr, nc = len(b), b.n_rx, b.n_tx
    ref_stream = ref.csi[:, :, :nr, :nc].reshape(n, 56, nr * nc)
    ours_stream = b.csi.transpose(0, 3, 2, 1).reshape(n, 56, nc * nr)
    np.testing.assert_array_equal(ours_stream, ref_stream)
    # element 1 of the stream is (tx 0, rx 1); csiread labels it rx 0, tx 1
    assert ref.csi[0, 0, 0, 1] == b.csi[0, 1, 0, 0] != b.csi[0, 0, 1, 0]
    np.testing.assert_array_equal(b.extra["timestamp"], ref.timestamp)
    np.testing.assert_array_equal(b.extra["rssi_combined"], ref.rssi)
    np.testing.assert_array_equal(b.extra["payload_len"], ref.payload_len)


def test_atheros_big_endian_and_pull10_files_are_detected(atheros_dir):
    little = (atheros_dir / ATHEROS_FILE).read_bytes()
    big = to_big_endian(little)
    assert big != little and len(big) == len(little)
    want = atheros.read(little).batch
    for data, expect_big in ((big, True), (b"\x00" + little, False), (b"\xff" + big, True)):
        assert read(data).format == "atheros"
        got = atheros.read(data)
        assert got.bad.total == 0
        b = got.batch
        np.testing.assert_array_equal(b.csi, want.csi)
        for name in ("timestamp", "freq_mhz", "payload_len", "rssi_chain"):
            np.testing.assert_array_equal(b.extra[name], want.extra[name])
        np.testing.assert_array_equal(b.seq, want.seq)
        np.testing.assert_array_equal(b.mac, want.mac)
    assert atheros._detect(big) == (0, True) and atheros._detect(b"\xff" + big) == (1, True)
    assert atheros._detect(b"\x00" + little) == (1, False)
    # forcing the wrong order finds no record rather than garbage
    with pytest.raises(ParseError, match="not_atheros"):
        atheros.read(little, endian="big", source="ath.dat")


# ----------------------------------------------------------------------------- Atheros: synthetic records

@settings(max_examples=40, deadline=None)
@given(nr=st.integers(1, 3), nc=st.integers(1, 3), tones=st.sampled_from([56, 114]), big=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_atheros_bit_stream_roundtrip_and_antenna_mapping(nr, nc, tones, big, seed):
    rng = np.random.default_rng(seed)
    packets = [random_atheros_csi(rng, nr, nc, tones) for _ in range(2)]
    data = b"".join(atheros_record(p, big=big, bw=int(tones == 114)) for p in packets)
    b = atheros.read(data).batch
    assert b.csi.shape == (2, nr, nc, tones)
    np.testing.assert_array_equal(b.csi, np.stack(packets))
    np.testing.assert_array_equal(b.subcarriers, atheros.SUBCARRIERS[tones])
    assert len(b.subcarriers) == tones and 0 not in b.subcarriers
    assert (b.bandwidth_mhz == (40 if tones == 114 else 20)).all()


def test_atheros_layouts_no_csi_and_bad_records(atheros_dir):
    rng = np.random.default_rng(11)
    frame = struct.pack("<HH6s6s6sH", 0x0188, 0, b"\x01" * 6, bytes.fromhex("02aabbccddee"), b"\x01" * 6, 0x0070)
    a = atheros_record(random_atheros_csi(rng, 3, 2, 56), payload=frame + b"\0" * 8)
    c = atheros_record(random_atheros_csi(rng, 2, 1, 114), freq=5180, bw=1, noise_floor=0xA0, rssi=(0x80, 1, 2, 3))
    header_only = struct.pack("<HQHHBBBBBBBBBBBH", 25, 1, 0, 2412, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    wrong_csi_len = atheros_record(random_atheros_csi(rng, 1, 1, 56), csi_len=139)[:-1]  # framing holds
    wrong_csi_len = struct.pack("<H", len(wrong_csi_len) - 2) + wrong_csi_len[2:]
    data = a + c + header_only + a + wrong_csi_len + c + a[:100]
    capture = atheros.read(data, source="mixed.dat")
    assert capture.bad.as_dict() == {"bad_csi_header": 1, "no_csi": 1, "truncated": 1}
    assert [len(b) for b in capture.batches] == [2, 2]
    first, second = capture.batches
    np.testing.assert_array_equal(first.packet_index, [0, 2])
    np.testing.assert_array_equal(second.packet_index, [1, 3])
    assert second.channel[0] == 36 and second.bandwidth_mhz[0] == 40
    assert second.noise[0] == -96 and np.isnan(second.rssi[0])  # rssi 0x80 = -128: no measurement
    assert first.macs() == ["02:aa:bb:cc:dd:ee"] and list(first.seq) == [7, 7]
    assert second.mac[0] == 0 and second.seq[0] == -1  # no payload, no frame header
    trunc = [e for e in capture.bad.examples if "truncated" in e][0]
    assert f"byte {len(data) - 100}" in trunc


def test_atheros_corrupted_buf_len_resyncs(atheros_dir):
    data = bytearray((atheros_dir / ATHEROS_FILE).read_bytes())
    data[1907 * 10] ^= 0x10  # record 10's buf_len
    capture = atheros.read(bytes(data))
    assert len(capture.batch) == 400 and capture.bad.as_dict() == {"bad_length": 1}
    assert f"byte {1907 * 10}: bad_length" in capture.bad.examples[0]


def test_atheros_sniffer(atheros_dir, intel_dir):
    assert atheros.sniff((atheros_dir / ATHEROS_FILE).read_bytes()[:4096])
    for name in INTEL_FILES:
        assert not atheros.sniff((intel_dir / name).read_bytes()[:4096])
    assert not atheros.sniff(b"") and not atheros.sniff(bytes(64))
    assert atheros.read(b"").n_packets == 0


# ----------------------------------------------------------------------------- fuzz: only ParseError, never a hang

def _read_or_parse_error(module, data: bytes):
    try:
        capture = module.read(data, source="fuzz.dat")
    except ParseError as exc:
        assert "fuzz.dat" in str(exc)
        return None
    for b in capture.batches:
        assert b.csi.flags.c_contiguous and np.isfinite(b.csi.view(np.float32)).all()
    indices = np.sort(np.concatenate([b.packet_index for b in capture.batches] or [np.zeros(0, np.int64)]))
    np.testing.assert_array_equal(indices, np.arange(capture.n_packets))
    return capture


@pytest.fixture(scope="module")
def intel_sample(intel_dir) -> bytes:
    # 12 x (0xC1, 0xBB 3x1) then 10 x 0xBB 3x2: both record kinds, two layouts
    return ((intel_dir / "sample_0x5_64_3000.dat").read_bytes()[:346 * 12]
            + (intel_dir / "sample_0x1_ap.dat").read_bytes()[:395 * 10])


@pytest.fixture(scope="module")
def atheros_sample(atheros_dir) -> bytes:
    return (atheros_dir / ATHEROS_FILE).read_bytes()[:1907 * 8]


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.binary(max_size=3000), fmt=st.sampled_from(["intel5300", "atheros"]))
def test_random_bytes_only_raise_parse_error(data, fmt):
    _read_or_parse_error(intel5300 if fmt == "intel5300" else atheros, data)


@pytest.fixture(scope="module")
def samples(intel_sample, atheros_sample) -> dict:
    """format -> (reader module, real capture prefix, packets in it)."""
    return {"intel5300": (intel5300, intel_sample, 22), "atheros": (atheros, atheros_sample, 8)}


@pytest.mark.timeout(120)
@FUZZ
@given(fmt=st.sampled_from(["intel5300", "atheros"]), data=st.data())
def test_mangled_files_only_raise_parse_error(samples, fmt, data):
    module, sample, packets = samples[fmt]
    blob = bytearray(sample)
    cut = data.draw(st.integers(0, len(blob)))
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8))
    for at, value in edits:
        blob[at] = value
    capture = _read_or_parse_error(module, bytes(blob[:cut]))
    assert capture is None or capture.n_packets <= packets


@pytest.mark.timeout(120)
@FUZZ
@given(record=st.integers(0, 21), value=st.integers(0, 0xFFFF))
def test_intel_corrupted_csi_record_length_loses_only_that_record(intel_sample, record, value):
    starts = [346 * k + 131 for k in range(12)] + [346 * 12 + 395 * k for k in range(10)]
    original = int.from_bytes(intel_sample[starts[record]:starts[record] + 2], "big")
    blob = bytearray(intel_sample)
    blob[starts[record]:starts[record] + 2] = value.to_bytes(2, "big")
    capture = _read_or_parse_error(intel5300, bytes(blob))
    lost = 0 if value == original else 1
    assert capture.n_packets == 22 - lost and capture.bad.total == lost


@pytest.mark.timeout(120)
@FUZZ
@given(record=st.integers(0, 7), value=st.integers(0, 0xFFFF))
def test_atheros_corrupted_buf_len_loses_only_that_record(atheros_sample, record, value):
    blob = bytearray(atheros_sample)
    blob[1907 * record:1907 * record + 2] = value.to_bytes(2, "little")
    capture = _read_or_parse_error(atheros, bytes(blob))
    lost = 0 if value == 1905 else 1
    assert capture.n_packets == 8 - lost and capture.bad.total == lost
