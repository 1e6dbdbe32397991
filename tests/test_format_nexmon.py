"""Nexmon CSI: UDP payload decoder, classic pcap and pcapng readers, and the Nexmon writer.

Real captures from ../shared/captures/nexmon are checked against what the
published parsers read from them (reference.json: csiread 1.4.1, CSIKit 2.5,
nexcsi 0.5.2) and against the official MATLAB reader's output (.mat files).
Where a reference parser is wrong, the test says which and why instead of
copying its mistake. Synthetic captures (other pcap magics, link types,
pcapng, junk records) are built here from the real ones with independent
code, and random input must only ever raise ParseError.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecsi.errors import ParseError
from edgecsi.firmware_bridge import read
from edgecsi.firmware_bridge.formats import nexmon_pcap, nexmon_payload, pcapng
from edgecsi.firmware_bridge.formats.nexmon_payload import decode_payloads, parse_datagram
from edgecsi.firmware_bridge.writers import nexmon as writer
from edgecsi.frames import mac_to_str

FILES = {
    "nexmon_csi_example_4358_80MHz.pcap": "4358",
    "csikit_example_4339.pcap": "4339",
    "csikit_example_43455c0.pcap": "43455c0",
    "csikit_example_4366c0.pcap": "4366c0",
}
MATS = {
    "nexmon_csi_example_4358_80MHz.pcap": "example_4358.mat",
    "csikit_example_43455c0.pcap": "example_43455c0.mat",
    "csikit_example_4366c0.pcap": "example_4366c0.mat",
}
FLOAT_CHIPS = {"4358": (9, 5), "4366c0": (12, 6)}


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def nexmon_dir(shared_dir):
    path = shared_dir / "captures" / "nexmon"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def reference(nexmon_dir):
    doc = json.loads((nexmon_dir / "reference.json").read_text())
    return {entry["file"]: entry for entry in doc["files"]}


@pytest.fixture(scope="module")
def raw(nexmon_dir):
    return {name: (nexmon_dir / name).read_bytes() for name in FILES}


def fft_order(csi_natural: np.ndarray) -> np.ndarray:
    """[packet, N] natural order -> the FFT order the reference parsers keep."""
    return np.fft.ifftshift(csi_natural, axes=-1)


def pcap_records(data: bytes) -> list[tuple[int, int, bytes]]:
    """(ts_sec, ts_usec, frame) of a little-endian microsecond pcap, by plain struct reading."""
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        out.append((sec, usec, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return out


def make_pcap(records, *, order="<", ns=False, linktype=1) -> bytes:
    """records: (sec, frac, frame); frac in the file's unit."""
    magic = {("<", False): 0xA1B2C3D4, (">", False): 0xA1B2C3D4, ("<", True): 0xA1B23C4D,
             (">", True): 0xA1B23C4D}[(order, ns)]
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for sec, frac, frame in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame)
    return b"".join(out)


def make_pcapng(records, *, order="<", linktype=1, tsresol_ns=False, simple=False, extra_blocks=True) -> bytes:
    """records: (sec, usec, frame) -> pcapng with one SHB, one IDB and EPBs (or SPBs)."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)

    shb = block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = b""
    if tsresol_ns:
        options = struct.pack(order + "HH", 9, 1) + b"\x09\0\0\0" + struct.pack(order + "HH", 0, 0)
    out = [shb, block(1, struct.pack(order + "HHI", linktype, 0, 262144) + options)]
    if extra_blocks:  # an interface statistics block and a custom block: skipped
        out.append(block(5, struct.pack(order + "III", 0, 0, 0)))
        out.append(block(0x00000BAD, struct.pack(order + "I", 32473) + b"junk"))
    for sec, usec, frame in records:
        if simple:
            out.append(block(3, struct.pack(order + "I", len(frame)) + frame))
        else:
            stamp = sec * 10**9 + usec * 1000 if tsresol_ns else sec * 10**6 + usec
            out.append(block(6, struct.pack(order + "IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF, len(frame),
                                            len(frame)) + frame))
    return b"".join(out)


def udp_payload_of(frame: bytes) -> bytes:
    udp_len = struct.unpack_from(">H", frame, 38)[0]
    return frame[42:34 + udp_len]


def same_batches(a, b, *, times=True) -> None:
    assert len(a.batches) == len(b.batches)
    for x, y in zip(a.batches, b.batches):
        assert x.chip == y.chip
        np.testing.assert_array_equal(x.csi, y.csi)
        np.testing.assert_array_equal(x.invalid, y.invalid)
        for col in ("mac", "seq", "core", "stream", "channel", "bandwidth_mhz", "packet_index"):
            np.testing.assert_array_equal(getattr(x, col), getattr(y, col))
        np.testing.assert_array_equal(x.rssi, y.rssi)
        if times:
            np.testing.assert_allclose(x.time, y.time, rtol=0, atol=2e-6)


def unpack_float_reference(words, nman: int, nexp: int, autoscale: bool) -> np.ndarray:
    """Word-by-word port of nexmon_csi utils/matlab/unpack_float.c (Python ints, so no int32
    overflow in the no-autoscale mode). words: FFT order; returns complex FFT order."""
    iq_mask, e_mask, e_p = (1 << (nman - 1)) - 1, (1 << nexp) - 1, 1 << (nexp - 1)
    sgnr = 1 << (nexp + 2 * nman - 1)
    sgni = sgnr >> nman
    maxbit, parts = -e_p, []
    for w in (int(x) for x in words):
        vi, vq, e = (w >> (nexp + nman)) & iq_mask, (w >> nexp) & iq_mask, w & e_mask
        if e >= e_p:
            e -= e_p << 1
        if autoscale and (vi | vq):
            maxbit = max(maxbit, e + (vi | vq).bit_length() - 1)
        parts.append((vi, bool(w & sgnr), vq, bool(w & sgni), e))
    shft = 10 - maxbit

    def conv(v: int, neg: bool, e: int) -> int:
        s = e + shft
        v = 0 if s < -nman else (v >> -s if s < 0 else v << s)
        return -v if neg else v

    return np.array([complex(conv(vi, si, e), conv(vq, sq, e)) for vi, si, vq, sq, e in parts])


def payload_bytes(words: np.ndarray, *, chip_id: int, legacy: bool = False, chanspec: int = 0xE02A,
                  rssi: int = -60) -> bytes:
    magic = b"\x11\x11\x11\x11" if legacy else b"\x11\x11" + struct.pack("<bB", rssi, 0x88)
    header = magic + bytes.fromhex("0a1b2c3d4e5f") + struct.pack("<HHHH", 0x1230, 0x0009, chanspec, chip_id)
    return header + np.asarray(words, dtype="<u4").tobytes()


# ----------------------------------------------------------------------------- real captures vs references

@pytest.mark.parametrize("name", list(FILES))
def test_capture_matches_reference_parsers(name, nexmon_dir, reference):
    ref = reference[name]
    chip = FILES[name]
    cap = read(nexmon_dir / name)
    assert cap.format == "nexmon-pcap" and cap.bad.total == 0
    b = cap.batch
    csiread_ref = ref["parsers"]["csiread.Nexmon"]
    pull46 = ref["parsers"]["csiread.NexmonPull46"]
    # Every UDP is one packet (CSIKit instead merges UDPs of equal sequence number into frames).
    assert len(b) == csiread_ref["count"]
    assert b.csi.shape == (csiread_ref["count"], 1, 1, 256) and b.chip == chip == ref["chip"]
    assert b.subcarriers[0] == -128 and b.subcarriers[-1] == 127
    np.testing.assert_array_equal(b.packet_index, np.arange(len(b)))
    assert np.all(np.diff(b.time) >= 0) and b.time[0] > 1.5e9

    first4 = np.array([complex(*v) for v in csiread_ref["first4"]])
    # int16 chips: exact. Packed float: the default autoscale equals csiread.Nexmon / MATLAB bit-exactly.
    np.testing.assert_array_equal(fft_order(b.csi[0, 0, 0])[:4], first4)

    assert mac_to_str(b.mac[0]) == csiread_ref["src_addr_first"]
    # seq is the 802.11 sequence number (Sequence Control >> 4); csiread/nexcsi report the raw field.
    np.testing.assert_array_equal(b.extra["seq_ctl"][:3], csiread_ref["seq_first3"])
    np.testing.assert_array_equal(b.seq[:3], np.array(csiread_ref["seq_first3"]) >> 4)
    np.testing.assert_array_equal(b.core[:4], csiread_ref["core_first4"])
    np.testing.assert_array_equal(b.stream[:4], csiread_ref["spatial_first4"])
    assert hex(b.extra["chanspec"][0]) == csiread_ref["chanspec_first"]
    assert hex(b.extra["chip_id"][0]) == csiread_ref["chip_version_first"]
    assert b.bandwidth_mhz[0] == 80 == b.extra["chanspec_bandwidth_mhz"][0] and b.extra["band_ghz"][0] == 5.0
    assert b.channel[0] == int(csiread_ref["chanspec_first"], 16) & 0xFF

    if chip == "43455c0":  # new header layout: rssi and frame control are real
        assert not b.extra["legacy_header"].any()
        np.testing.assert_array_equal(b.rssi[:3], pull46["rssi_first3"])
        np.testing.assert_array_equal(b.extra["frame_control"][:3], pull46["fc_first3"])
    else:
        # Legacy layout has no RSSI: NexmonPull46/nexcsi report 17 (the magic byte 0x11 read as
        # rssi), CSIKit -1; neither is a measurement, so we report NaN.
        assert b.extra["legacy_header"].all()
        assert np.isnan(b.rssi).all() and pull46["rssi_first3"] == [17, 17, 17]
        assert (b.extra["frame_control"] == -1).all()


@pytest.mark.parametrize("name", [n for n, c in FILES.items() if c in FLOAT_CHIPS])
def test_packed_float_scalings_against_nexcsi_and_pull46(name, nexmon_dir, reference):
    ref = reference[name]["parsers"]
    nman, nexp = FLOAT_CHIPS[FILES[name]]
    none = read(nexmon_dir / name, scaling="none").batch
    exact = read(nexmon_dir / name, scaling="exact").batch
    auto = read(nexmon_dir / name).batch
    assert (none.extra["scale_exponent"] == 10 + 2 ** (nexp - 1)).all()
    assert (exact.extra["scale_exponent"] == 0).all()
    np.testing.assert_array_equal(none.csi, exact.csi * np.float32(2.0 ** (10 + 2 ** (nexp - 1))))
    # autoscale = exact value scaled to 11 bits per packet, truncated toward zero.
    scale = np.exp2(auto.extra["scale_exponent"].astype(np.float64))[:, None, None, None]
    want = exact.csi.astype(np.complex128) * scale
    np.testing.assert_array_equal(auto.csi, np.trunc(want.real) + 1j * np.trunc(want.imag))

    # nexcsi computes mag * 2**((e & (2**(nexp-1)-1)) + 10): it drops the exponent's sign bit,
    # which equals exact * 2**(10 + 2**(nexp-1)) only while every exponent is negative (true in
    # both samples), so "none" must equal it.
    nexcsi_first = np.array([complex(*v) for v in ref["nexcsi"]["first4_no_fftshift"]])
    np.testing.assert_allclose(fft_order(none.csi[0, 0, 0])[:4], nexcsi_first, rtol=1e-5)
    pull46_first = np.array([complex(*v) for v in ref["csiread.NexmonPull46"]["first4"]])
    got = fft_order(none.csi[0, 0, 0])[:4]
    if FILES[name] == "4358":
        np.testing.assert_allclose(got, pull46_first, rtol=1e-5)
    else:
        # csiread.NexmonPull46 shifts by 42 in int32 on the 4366c0: it overflows (its "-5.37e8"
        # values are garbage). We compute in float32 and get the intended exact * 2**42.
        assert np.abs(got).max() > 2**31 > np.abs(pull46_first).max()
        assert not np.allclose(got, pull46_first, rtol=1e-5)


@pytest.mark.parametrize("name", list(MATS))
def test_matches_official_matlab_reader(name, nexmon_dir, raw):
    scipy_io = pytest.importorskip("scipy.io")
    mat = scipy_io.loadmat(nexmon_dir / "matlab_reference" / MATS[name])["csi_buff"]  # [packet, N] FFT order
    b = read(nexmon_dir / name).batch
    ours = fft_order(b.csi[:, 0, 0, :])
    # csireader.m skips frames whose pcap orig_len is not 60 + 4N: the frames with trailing padding
    # bytes (nexmon_csi issue #279). Their datagrams are intact, so we keep them; MATLAB leaves its
    # preallocated rows for them zero at the end of csi_buff.
    padded = np.array([len(frame) != 42 + 18 + 4 * 256 for _, _, frame in pcap_records(raw[name])])
    kept = int((~padded).sum())
    assert mat.shape == (len(b), 256)
    np.testing.assert_array_equal(ours[~padded], mat[:kept])
    assert not mat[kept:].any()
    if FILES[name] == "43455c0":
        assert padded.sum() == 18 and len(b) == 566


def test_all_packets_equal_csiread_and_nexcsi(nexmon_dir):
    """Whole captures, not just the first values, against the installed reference parsers."""
    csiread = pytest.importorskip("csiread")
    nexcsi = pytest.importorskip("nexcsi")
    device = {"4339": "nexus5", "43455c0": "raspberrypi", "4358": "nexus6p", "4366c0": "rtac86u"}
    for name, chip in FILES.items():
        path = str(nexmon_dir / name)
        ref = csiread.Nexmon(path, chip=chip, bw=80, if_report=False)
        ref.read()
        auto = read(path).batch
        np.testing.assert_array_equal(fft_order(auto.csi[:, 0, 0, :]), ref.csi)
        dec = nexcsi.decoder(device[chip])
        samples = dec.read_pcap(path)
        theirs = np.asarray(dec.unpack(samples["csi"], fftshift=False))
        ours = fft_order(read(path, scaling="none").batch.csi[:, 0, 0, :])
        if chip in FLOAT_CHIPS:
            np.testing.assert_allclose(ours, theirs, rtol=1e-5)  # exponents all negative here
        else:
            np.testing.assert_array_equal(ours, theirs)


def test_invalid_mask_guards_and_phy_status(nexmon_dir):
    new = read(nexmon_dir / "csikit_example_43455c0.pcap").batch
    old = read(nexmon_dir / "csikit_example_4366c0.pcap").batch
    sc = new.subcarriers
    guards = (np.abs(sc) > 122) | np.isin(sc, (-1, 0, 1))
    # New-layout firmware copies 12 PHY-status bytes over CSI words 0..2 = subcarriers 0, +1, +2
    # (+2 is a data subcarrier at 80 MHz); the 43455c0 sample shows constant bytes there.
    np.testing.assert_array_equal(new.invalid[0], guards | (sc == 2))
    words = fft_order(new.csi[:, 0, 0, :])[:, :3]
    assert len(np.unique(words[:, 0])) == 1 and np.abs(words[:, 1]).min() > 30000
    # The legacy-layout 4366c0 firmware does not do that: +2 is a normal subcarrier there.
    np.testing.assert_array_equal(old.invalid[0], guards)
    assert new.invalid.all(axis=0).sum() == guards.sum() + 1
    # Values stay as received in every bin; valid_csi() zeroes the invalid ones.
    assert new.csi[0, 0, 0, sc == 2] != 0 and new.valid_csi()[0, 0, 0, sc == 2] == 0


def test_20mhz_phy_status_and_pilots_mask():
    words = np.arange(1, 65, dtype=np.uint32)
    b = parse_datagram(payload_bytes(words, chip_id=0x0065, chanspec=0x1006), received=12.5)
    assert b.bandwidth_mhz[0] == 20 and b.channel[0] == 6 and b.extra["band_ghz"][0] == np.float32(2.4)
    sc = b.subcarriers
    assert len(sc) == 64 and b.time[0] == 12.5 and b.rssi[0] == -60
    # 20 MHz: PHY status over words 28, 29, 30 (+28 is a data subcarrier).
    np.testing.assert_array_equal(b.invalid[0], (np.abs(sc) > 28) | (sc == 0) | np.isin(sc, (28, 29, 30)))
    legacy = parse_datagram(payload_bytes(words, chip_id=0x0065, legacy=True, chanspec=0x1006))
    assert not legacy.invalid[0, sc == 28][0]
    pilots = parse_datagram(payload_bytes(words, chip_id=0x0065, chanspec=0x1006), mask_pilots=True)
    assert pilots.invalid[0, np.isin(sc, (-21, -7, 7, 21))].all()


def test_chip_override_and_junk_chip_ids(nexmon_dir, raw):
    # example.pcap was written before the chip field existed (0xdead); like CSIKit we map it to 4358,
    # and chip= overrides whatever the field says.
    name = "nexmon_csi_example_4358_80MHz.pcap"
    default = read(raw[name]).batch
    forced = read(raw[name], chip="bcm4358").batch
    np.testing.assert_array_equal(default.csi, forced.csi)
    assert forced.extra["chip_id"][0] == 0xDEAD
    as_4366 = read(raw[name], chip="4366c0").batch
    assert as_4366.chip == "4366c0" and not np.array_equal(as_4366.csi, default.csi)
    with pytest.raises(ValueError, match="unknown Nexmon chip"):
        read(raw[name], chip="4360")
    with pytest.raises(ValueError, match="scaling"):
        read(raw[name], scaling="auto")

    # An unknown chip id is counted per packet, with the way out in the message.
    records = pcap_records(raw[name])
    patched = [(s, u, f[:58] + b"\x34\x12" + f[60:]) for s, u, f in records]
    cap = read(make_pcap(patched))
    assert cap.n_packets == 0 and cap.bad.as_dict() == {"unknown_chip": 4}
    assert "chip id 0x1234" in cap.bad.examples[0] and "chip=" in cap.bad.examples[0]
    assert read(make_pcap(patched), chip="4358").n_packets == 4


def test_swap_iq(raw):
    a = read(raw["csikit_example_4366c0.pcap"]).batch
    b = read(raw["csikit_example_4366c0.pcap"], swap_iq=True).batch
    np.testing.assert_array_equal(b.csi.real, a.csi.imag)
    np.testing.assert_array_equal(b.csi.imag, a.csi.real)


# ----------------------------------------------------------------------------- containers

@pytest.mark.parametrize("length", [0xFFFFFFF0, 5000])
def test_damaged_record_length_loses_one_record(length, raw):
    data = bytearray(raw["csikit_example_4366c0.pcap"])
    at = 24 + 50 * 1100  # record 50
    data[at + 8:at + 12] = struct.pack("<I", length)
    cap = nexmon_pcap.read(bytes(data), source="damaged.pcap")
    assert cap.bad.as_dict() == {"bad_record_header": 1}
    assert cap.bad.examples[0].startswith(f"damaged.pcap: byte {at}: bad_record_header")
    good = read(raw["csikit_example_4366c0.pcap"]).batch
    np.testing.assert_array_equal(cap.batch.csi, good.csi[np.arange(len(good)) != 50])
    np.testing.assert_array_equal(cap.batch.packet_index, np.arange(len(good) - 1))


@pytest.mark.parametrize("order,ns", [("<", False), (">", False), ("<", True), (">", True)])
def test_all_four_pcap_magics(order, ns, raw):
    original = raw["csikit_example_43455c0.pcap"]
    records = [(s, u * 1000 if ns else u, f) for s, u, f in pcap_records(original)]
    converted = make_pcap(records, order=order, ns=ns)
    assert nexmon_pcap.sniff(converted) and read(converted).format == "nexmon-pcap"
    same_batches(read(converted), read(original))
    # The writer produces the same four variants.
    written = writer.write_pcap(read(original), byteorder=order, nanosecond=ns)
    same_batches(read(written), read(original))


def test_padded_frames_are_kept_by_udp_length(raw):
    records = pcap_records(raw["csikit_example_43455c0.pcap"])
    assert sum(len(f) == 1088 for _, _, f in records) == 18
    cap = read(raw["csikit_example_43455c0.pcap"])
    assert cap.n_packets == 566 and cap.bad.total == 0
    # Padding after the datagram does not change the decoded packet.
    unpadded = read(make_pcap([(s, u, f[:1084]) for s, u, f in records]))
    same_batches(cap, unpadded)


@pytest.mark.parametrize("linktype", [113, 101])
def test_linux_cooked_and_raw_ip(linktype, raw):
    cap = read(raw["csikit_example_4366c0.pcap"])
    again = read(writer.write_pcap(cap, linktype=linktype))
    same_batches(again, cap)


def test_linux_cooked_v2_and_raw_ipv4(raw):
    records = pcap_records(raw["csikit_example_4366c0.pcap"])
    # SLL2: protocol, reserved, interface index, ARPHRD type, packet type, address length, address
    sll2 = [(s, u, struct.pack(">HHIHBB8s", 0x0800, 0, 3, 1, 4, 6, f[6:12] + b"\0\0") + f[14:])
            for s, u, f in records]
    same_batches(read(make_pcap(sll2, linktype=276)), read(raw["csikit_example_4366c0.pcap"]))
    raw_ip = [(s, u, f[14:]) for s, u, f in records]
    same_batches(read(make_pcap(raw_ip, linktype=228)), read(raw["csikit_example_4366c0.pcap"]))


def test_vlan_tagged_ethernet(raw):
    records = pcap_records(raw["csikit_example_4366c0.pcap"])
    tagged = [(s, u, f[:12] + b"\x81\x00\x00\x05" + f[12:]) for s, u, f in records]
    same_batches(read(make_pcap(tagged)), read(raw["csikit_example_4366c0.pcap"]))


def test_non_csi_records_are_counted_and_skipped(raw):
    records = pcap_records(raw["csikit_example_4366c0.pcap"])[:6]
    csi = [f for _, _, f in records]
    eth, ip = csi[0][:14], csi[0][14:34]
    arp = eth[:12] + b"\x08\x06" + bytes(28)
    ipv6 = eth[:12] + b"\x86\xdd" + bytes(60)
    tcp = eth + ip[:9] + b"\x06" + ip[10:] + bytes(20)
    dns = csi[1][:36] + b"\x00\x35" + csi[1][38:]  # UDP to port 53
    fragment = csi[2][:20] + b"\x20\x00" + csi[2][22:]  # more-fragments flag
    garbage = csi[3][:42] + b"\x22" * (len(csi[3]) - 42)  # UDP/5500 but not a Nexmon payload
    short = csi[4][:40]  # ends inside the UDP header
    odd = writer.udp_frame(b"\x11\x11\x11\x11" + bytes(30))  # payload length fits no FFT size
    frames = [csi[0], arp, ipv6, tcp, dns, csi[5], fragment, garbage, short, odd]
    data = make_pcap([(1000 + i, 0, f) for i, f in enumerate(frames)])
    data += struct.pack("<IIII", 2000, 0, 500, 500) + bytes(100)  # truncated last record
    cap = nexmon_pcap.read(data, source="mixed.pcap")
    assert cap.bad.as_dict() == {"not_ipv4": 2, "not_udp": 1, "wrong_port": 1, "ip_fragment": 1,
                                 "bad_magic": 1, "truncated_frame": 1, "bad_length": 1, "truncated": 1}
    b = cap.batch
    np.testing.assert_array_equal(b.time, [1000, 1005])
    np.testing.assert_array_equal(b.packet_index, [0, 1])
    np.testing.assert_array_equal(b.csi, read(raw["csikit_example_4366c0.pcap"]).batch.csi[[0, 5]])
    assert all(msg.startswith("mixed.pcap: ") and "byte " in msg for msg in cap.bad.examples)
    assert any("port 53" in msg for msg in cap.bad.examples)
    # port=None accepts any UDP port.
    assert read(data, port=None).bad.counts["wrong_port"] == 0


def test_mixed_bandwidths_make_two_batches_in_order(raw):
    cap4366 = read(raw["csikit_example_4366c0.pcap"], scaling="exact")
    words20 = np.arange(64, dtype=np.uint32) << np.uint32(6)
    frames = [writer.udp_frame(p) for p in writer.payloads(cap4366.batch.select(slice(0, 3)))]
    frames.insert(1, writer.udp_frame(payload_bytes(words20, chip_id=0x006A, chanspec=0xD024)))
    cap = read(make_pcap([(i, 0, f) for i, f in enumerate(frames)]))
    assert [b.csi.shape[-1] for b in cap.batches] == [256, 64]
    np.testing.assert_array_equal(cap.batches[0].packet_index, [0, 2, 3])
    np.testing.assert_array_equal(cap.batches[1].packet_index, [1])
    np.testing.assert_array_equal(cap.times(), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="layouts"):
        cap.batch


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("variant", ["epb", "epb-ns", "spb"])
def test_pcapng(order, variant, raw):
    original = raw["csikit_example_43455c0.pcap"]
    records = pcap_records(original)
    data = make_pcapng(records, order=order, tsresol_ns=variant == "epb-ns", simple=variant == "spb")
    assert pcapng.sniff(data) and not nexmon_pcap.sniff(data)
    cap = read(data)
    assert cap.format == "pcapng" and cap.bad.total == 0
    same_batches(cap, read(original), times=variant != "spb")
    if variant == "spb":  # simple packet blocks carry no timestamp
        assert np.isnan(cap.batch.time).all()


def test_pcapng_damage_is_counted(raw):
    records = pcap_records(raw["csikit_example_4366c0.pcap"])[:20]
    data = make_pcapng(records)
    cut = read(data[:-100])
    assert cut.n_packets == 19 and cut.bad.as_dict() == {"truncated": 1}
    # A wrong block length ends the reading; what came before is kept.
    first_epb = data.index(struct.pack("<I", 6))
    tenth = first_epb + 9 * (len(data) - first_epb) // 20
    broken = data[:tenth + 4] + struct.pack("<I", 12345) + data[tenth + 8:]
    cap = read(broken)
    assert cap.n_packets == 9 and cap.bad.as_dict() == {"bad_block": 1}
    with pytest.raises(ParseError, match="byte-order"):
        pcapng.read(data[:8] + b"\0\0\0\0" + data[12:])
    eth = make_pcapng(records[:2], linktype=105)  # 802.11 link type: counted, not crashed
    assert read(eth).bad.as_dict() == {"unsupported_linktype": 2}


def test_pcap_header_errors():
    with pytest.raises(ParseError, match="24-byte") as exc:
        nexmon_pcap.read(b"\xd4\xc3\xb2\xa1" + bytes(10), source="tiny.pcap")
    assert exc.value.offset == 0 and "tiny.pcap" in str(exc.value)
    with pytest.raises(ParseError, match="link type 127"):
        nexmon_pcap.read(make_pcap([], linktype=127))
    with pytest.raises(ParseError, match="magic"):
        nexmon_pcap.read(bytes(64))
    assert read(make_pcap([])).n_packets == 0


# ----------------------------------------------------------------------------- payload decoder

def test_parse_datagram_equals_file_reader(raw):
    for name in FILES:
        records = pcap_records(raw[name])
        cap = read(raw[name])
        for k in (0, len(records) - 1):
            b = parse_datagram(udp_payload_of(records[k][2]), received=123.0, source="udp://x", offset=7)
            row = cap.batch.select([k])
            np.testing.assert_array_equal(b.csi, row.csi)
            np.testing.assert_array_equal(b.invalid, row.invalid)
            assert b.time[0] == 123.0 and b.seq[0] == row.seq[0] and b.mac[0] == row.mac[0]
            np.testing.assert_array_equal(b.rssi, row.rssi)


def test_parse_datagram_errors_name_source_and_offset(raw):
    good = udp_payload_of(pcap_records(raw["csikit_example_4366c0.pcap"])[0][2])
    cases = {
        "truncated": good[:10],
        "bad_length": good[:-4],
        "bad_magic": b"\x22\x22" + good[2:],
        "unknown_chip": good[:16] + b"\x34\x12" + good[18:],
    }
    for reason, payload in cases.items():
        with pytest.raises(ParseError) as exc:
            parse_datagram(payload, source="udp://0.0.0.0:5500", offset=99)
        assert exc.value.reason == reason and exc.value.offset == 99
        assert str(exc.value).startswith("udp://0.0.0.0:5500: byte 99: " + reason)
    assert parse_datagram(cases["unknown_chip"], chip="4366c0").chip == "4366c0"


def test_decode_payloads_mixed_rows_and_chips(raw):
    rows = [udp_payload_of(f) for _, _, f in pcap_records(raw["csikit_example_4366c0.pcap"])[:4]]
    rows += [udp_payload_of(f) for _, _, f in pcap_records(raw["nexmon_csi_example_4358_80MHz.pcap"])[:2]]
    rows.insert(2, b"\x00" * len(rows[0]))
    block = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1)
    decoded = decode_payloads(block, time=np.arange(len(rows), dtype=float))
    assert [b.chip for b in decoded.batches] == ["4366c0", "4358"]
    np.testing.assert_array_equal(decoded.batches[0].packet_index, [0, 1, 3, 4])
    np.testing.assert_array_equal(decoded.batches[1].time, [5, 6])
    assert [(r.reason, r.rows.tolist()) for r in decoded.rejected] == [("bad_magic", [2])]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chip=st.sampled_from(sorted(FLOAT_CHIPS)), nfft=st.sampled_from([64, 128, 256]),
       seed=st.integers(0, 2**32 - 1), sparse=st.booleans())
def test_packed_float_matches_unpack_float_c(chip, nfft, seed, sparse):
    nman, nexp = FLOAT_CHIPS[chip]
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**32, size=nfft, dtype=np.uint64).astype(np.uint32)
    if sparse:  # mostly zero words, exponents anywhere: autoscale's corner cases
        words[rng.random(nfft) < 0.9] = 0
    words[0] = 0
    payload = payload_bytes(words, chip_id=nexmon_payload.CHIPS[chip].chip_id)
    natural = np.fft.fftshift
    for scaling, autoscale in (("autoscale", True), ("none", False)):
        got = parse_datagram(payload, scaling=scaling).csi[0, 0, 0]
        want = natural(unpack_float_reference(words, nman, nexp, autoscale))
        np.testing.assert_array_equal(got, want.astype(np.complex64))
    exact = parse_datagram(payload, scaling="exact").csi[0, 0, 0].astype(np.complex128)
    e = ((words.astype(np.int64) & ((1 << nexp) - 1)) ^ (1 << (nexp - 1))) - (1 << (nexp - 1))
    mag_i = (words.astype(np.int64) >> (nexp + nman)) & ((1 << (nman - 1)) - 1)
    neg_i = (words.astype(np.int64) >> (nexp + 2 * nman - 1)) & 1
    np.testing.assert_array_equal(exact.real, natural(np.where(neg_i, -mag_i, mag_i) * np.exp2(e)))


# ----------------------------------------------------------------------------- writer

@pytest.mark.parametrize("name", list(FILES))
def test_writer_round_trip(name, raw):
    for scaling in ("exact", "autoscale"):
        cap = read(raw[name], scaling=scaling)
        again = read(writer.write_pcap(cap), scaling=scaling)
        same_batches(again, cap)
        for key in cap.batch.extra:
            np.testing.assert_array_equal(again.batch.extra[key], cap.batch.extra[key])
    # int16 chips and the 4358 file come back byte for byte (4366c0 firmware writes mantissas
    # that are not normalised, so its words differ while the values are equal).
    if FILES[name] in ("4339", "4358"):
        assert writer.write_pcap(read(raw[name], scaling="exact")) == raw[name]


def test_writer_layouts_and_columns():
    words = np.arange(256, dtype=np.int64)
    csi = (words - 100) + 1j * (50 - words)
    from edgecsi.frames import make_batch
    batch = make_batch(format="x", chip="43455c0", subcarriers=np.arange(-128, 128), csi=csi[None, :],
                       mac=[0x0102030405FF], seq=[100], rssi=[-71], channel=[36], bandwidth_mhz=[80], core=[1],
                       stream=[2], time=[5.25])
    for layout in ("new", "legacy"):
        payload = writer.payloads(batch, layout=layout)[0]
        assert payload[:4] == (b"\x11\x11\x11\x11" if layout == "legacy" else b"\x11\x11\xb9\x00")
        b = parse_datagram(payload)
        np.testing.assert_array_equal(b.csi, batch.csi)
        assert (b.seq[0], b.core[0], b.stream[0], b.channel[0], b.bandwidth_mhz[0]) == (100, 1, 2, 36, 80)
        assert mac_to_str(b.mac[0]) == "01:02:03:04:05:ff" and b.extra["band_ghz"][0] == 5.0
        assert (b.rssi[0] == -71) if layout == "new" else np.isnan(b.rssi[0])
    with pytest.raises(ValueError, match="chip"):
        writer.payloads(make_batch(format="x", chip="esp32", subcarriers=np.arange(-32, 32),
                                   csi=np.ones((1, 64))))
    with pytest.raises(ValueError, match="subcarriers"):
        writer.payloads(make_batch(format="x", chip="4339", subcarriers=np.arange(52), csi=np.ones((1, 52))))


@settings(max_examples=100, deadline=None)
@given(chip=st.sampled_from(sorted(FLOAT_CHIPS)), seed=st.integers(0, 2**32 - 1))
def test_writer_packed_float_round_trip(chip, seed):
    nman, nexp = FLOAT_CHIPS[chip]
    rng = np.random.default_rng(seed)
    top = 2 ** (nman - 1) - 1
    # Values the chip can represent come back exactly ...
    e = rng.integers(-(2 ** (nexp - 1)), 2 ** (nexp - 1), size=64)
    exact = (rng.integers(-top, top + 1, size=64) + 1j * rng.integers(-top, top + 1, size=64)) * np.exp2(e)
    exact = exact.astype(np.complex64)
    from edgecsi.frames import make_batch
    batch = make_batch(format="x", chip=chip, subcarriers=np.arange(-32, 32), csi=exact[None, :])
    back = parse_datagram(writer.payloads(batch)[0], scaling="exact").csi[0, 0, 0]
    np.testing.assert_array_equal(back, exact)
    # ... any other value to half a mantissa step: the step is at most 2 * larger component / top,
    # or 2**e_min where the exponent cannot go lower.
    values = (rng.normal(size=64) + 1j * rng.normal(size=64)) * 10.0 ** rng.uniform(-3, 3)
    values = values.astype(np.complex64).astype(np.complex128)  # what the batch holds
    batch = make_batch(format="x", chip=chip, subcarriers=np.arange(-32, 32), csi=values[None, :])
    back = parse_datagram(writer.payloads(batch)[0], scaling="exact").csi[0, 0, 0]
    larger = np.maximum(np.abs(values.real), np.abs(values.imag))
    bound = np.maximum(larger / top, 2.0 ** (-(2 ** (nexp - 1)) - 1)) * (1 + 1e-9)
    assert (np.abs(back.real - values.real) <= bound).all() and (np.abs(back.imag - values.imag) <= bound).all()


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.tuples(st.integers(-32768, 32767), st.integers(-32768, 32767)), min_size=64, max_size=64))
def test_writer_int16_round_trip(values):
    from edgecsi.frames import make_batch
    csi = np.array([complex(r, i) for r, i in values])
    batch = make_batch(format="x", chip="4339", subcarriers=np.arange(-32, 32), csi=csi[None, :])
    np.testing.assert_array_equal(parse_datagram(writer.payloads(batch, layout="legacy")[0]).csi[0, 0, 0], csi)


# ----------------------------------------------------------------------------- robustness

def _read_only_parse_errors(data: bytes) -> None:
    for reader in (nexmon_pcap.read, pcapng.read, read):
        try:
            cap = reader(data)
        except ParseError:
            continue
        assert cap.n_packets >= 0 and cap.bad.total >= 0
        for b in cap.batches:
            assert b.csi.dtype == np.complex64 and len(b) == len(b.time)


@pytest.fixture(scope="module")
def small_captures(raw):
    pcap = raw["nexmon_csi_example_4358_80MHz.pcap"]
    mixed = make_pcap(pcap_records(raw["csikit_example_43455c0.pcap"])[110:122])
    return [pcap, mixed, make_pcapng(pcap_records(pcap)), make_pcapng(pcap_records(mixed), order=">")]


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_captures(small_captures, data):
    base = bytearray(data.draw(st.sampled_from(small_captures)))
    for _ in range(data.draw(st.integers(0, 6))):
        kind = data.draw(st.sampled_from(["byte", "u32", "truncate", "insert"]))
        if not base:
            break
        at = data.draw(st.integers(0, len(base) - 1))
        if kind == "byte":
            base[at] = data.draw(st.integers(0, 255))
        elif kind == "u32":  # lengths are u32 fields: hit them with extreme values
            base[at:at + 4] = struct.pack("<I", data.draw(st.sampled_from([0, 1, 15, 16, 2**31, 2**32 - 1])))
        elif kind == "truncate":
            del base[at:]
        else:
            base[at:at] = data.draw(st.binary(max_size=40))
    _read_only_parse_errors(bytes(base))


@settings(max_examples=300, deadline=None)
@given(magic=st.sampled_from([*nexmon_pcap.MAGICS, b"\x0a\x0d\x0d\x0a"]), body=st.binary(max_size=600))
def test_fuzz_random_bytes(magic, body):
    _read_only_parse_errors(magic + body)


@pytest.mark.timeout(120)
def test_every_truncation_of_a_capture(small_captures):
    for base in small_captures:
        for cut in range(0, len(base), 31):
            _read_only_parse_errors(base[:cut])


@settings(max_examples=500, deadline=None)
@given(prefix=st.sampled_from([b"", b"\x11\x11", b"\x11\x11\x11\x11", b"\x11\x11\xc4\x88"]),
       body=st.binary(max_size=1100), chip=st.sampled_from([None, "4339", "4358", "4366c0"]),
       scaling=st.sampled_from(nexmon_payload.SCALINGS))
def test_fuzz_parse_datagram(prefix, body, chip, scaling):
    try:
        b = parse_datagram(prefix + body, chip=chip, scaling=scaling)
    except ParseError:
        return
    assert len(b) == 1 and np.isfinite(b.csi).all()


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.integers(0, 2**32 - 1), min_size=256, max_size=256),
       chip=st.sampled_from(sorted(nexmon_payload.CHIPS)), legacy=st.booleans())
def test_fuzz_valid_headers_random_words_decode(words, chip, legacy):
    payload = payload_bytes(np.array(words, dtype=np.uint32), chip_id=nexmon_payload.CHIPS[chip].chip_id,
                            legacy=legacy)
    for scaling in nexmon_payload.SCALINGS:
        b = parse_datagram(payload, scaling=scaling)
        assert b.chip == chip and np.isfinite(b.csi).all() and b.extra["legacy_header"][0] == legacy
