"""Live sources against real things: UDP sockets on 127.0.0.1, a pty standing in for the ESP32's
USB serial port, real capture files, stdin of a subprocess. Valid packets come from the real
captures in ../shared/captures; garbage is mixed in and must be counted and skipped."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgecsi.firmware_bridge import read
from edgecsi.firmware_bridge.sources import Source, open_source
from edgecsi.firmware_bridge.sources.line_buffer import LineBuffer
from edgecsi.firmware_bridge.sources.pcap_stream import PcapStream, udp_payload
from edgecsi.firmware_bridge.sources.serial_port import SerialOpenError, SerialSource
from edgecsi.firmware_bridge.sources.stdin import StdinSource
from edgecsi.firmware_bridge.sources.udp import UDPSource
from edgecsi.firmware_bridge.sources.uri import SourceURIError
from edgecsi.frames import concat

NEXMON_4339 = "captures/nexmon/csikit_example_4339.pcap"
NEXMON_43455 = "captures/nexmon/csikit_example_43455c0.pcap"
ESP32_TOOL = "captures/esp32-csi-tool/csikit_example_data.csv"  # header row + 60 HT20 STBC lines
ESP32_TOOL_TRUNCATED = "captures/esp32-csi-tool/csikit_example_100hz_pitraffic.csv"  # one 127-value row
ESP_CSI = "captures/esp-csi/esp32_csi_recv_router_readme.csv"  # esp-csi quoted JSON arrays


def require(module: str) -> None:
    """Skip while a format module this test feeds is not in the tree yet (written in parallel)."""
    pytest.importorskip(f"edgecsi.firmware_bridge.formats.{module}")


def pcap_payloads(path: Path) -> list[bytes]:
    stream = PcapStream(source=str(path))
    return [udp_payload(frame, stream.linktype) for _, frame in stream.feed(path.read_bytes())]


def csi_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines(keepends=True) if line.startswith(b"CSI_DATA")]


def collect(src: Source, until, deadline: float = 15.0) -> list:
    """Read until ``until(stats)`` holds (or the deadline passes); all batches read."""
    out = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        out.extend(src.read(0.05))
        if until(src.stats()):
            break
    out.extend(src.read(0.05))  # anything that raced in
    return out


def n_rows(batches) -> int:
    return sum(len(b) for b in batches)


@pytest.fixture(scope="module")
def payloads_4339(shared_dir) -> list[bytes]:
    return pcap_payloads(shared_dir / NEXMON_4339)


# -- line buffer / pcap stream -------------------------------------------------------------

def test_line_buffer_splits_across_chunks_and_drops_overlong_lines():
    buf = LineBuffer(max_line=10)
    assert buf.feed(b"ab") == []
    assert buf.feed(b"c\r\nde\nf") == [b"abc\r", b"de"]
    assert buf.feed(b"0123456789ABC") == []  # the partial line has grown past 10 bytes
    assert buf.too_long == 1 and buf.pending == 0
    assert buf.feed(b"more junk\nok\n") == [b"ok"]  # resynchronised at the next newline
    assert buf.feed(b"x" * 11 + b"\ny\n") == [b"y"]  # a complete line that is too long
    assert buf.too_long == 2
    assert buf.feed(b"tail") == [] and buf.flush() == b"tail" and buf.flush() is None


def test_pcap_stream_in_odd_chunks_matches_the_file_reader(shared_dir):
    data = (shared_dir / NEXMON_4339).read_bytes()
    stream = PcapStream()
    records = []
    for i in range(0, len(data), 777):
        records.extend(stream.feed(data[i:i + 777]))
    assert stream.pending == 0 and stream.linktype == 1
    payloads = [udp_payload(frame, stream.linktype) for _, frame in records]
    capture = read(shared_dir / NEXMON_4339)
    assert len(payloads) == capture.n_packets == 2850
    assert {len(p) for p in payloads} == {18 + 4 * 256}
    np.testing.assert_allclose([t for t, _ in records], capture.times())


def test_udp_payload_rejects_what_is_not_udp():
    from edgecsi.errors import ParseError

    arp = bytes(12) + b"\x08\x06" + bytes(28)
    with pytest.raises(ParseError) as info:
        udp_payload(arp, 1)
    assert info.value.reason == "not_ip"
    with pytest.raises(ParseError) as info:
        udp_payload(b"\x00" * 5, 1)
    assert info.value.reason == "truncated"


# -- UDP -------------------------------------------------------------------------------------

def test_udp_nexmon_payloads_with_garbage_are_counted_and_skipped(shared_dir, payloads_4339):
    valid = payloads_4339[:400]
    garbage = {
        "unknown_datagram": [b"", bytes(range(256)).replace(b"\x11", b"\x12") * 2],
        "truncated": [b"\x11\x11\x11\x11" + bytes(6)],  # magic, but shorter than the header
        "bad_length": [valid[0][:-3]],  # not 18 + 4*nfft bytes
    }
    text = [b"hello world", b"I (29) boot: ESP-IDF v4.3\r\nCSI_DAT\n"]  # not CSI: ignored lines, not bad
    expected_bad = {reason: len(items) for reason, items in garbage.items()}
    junk = [item for items in garbage.values() for item in items] + text
    with open_source("udp://127.0.0.1:0") as src:
        assert isinstance(src, Source) and src.port > 0
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rng = random.Random(1)
        for i, payload in enumerate(valid):
            tx.sendto(payload, ("127.0.0.1", src.port))
            if rng.random() < 0.02 and junk:
                tx.sendto(junk.pop(), ("127.0.0.1", src.port))
        for item in junk:
            tx.sendto(item, ("127.0.0.1", src.port))
        tx.close()
        batches = collect(src, lambda s: s.packets + s.bad_total >= len(valid) + sum(expected_bad.values()))
        stats = src.stats()
    assert stats.packets == n_rows(batches) == len(valid)
    assert stats.bad.as_dict() == expected_bad
    assert stats.ignored_lines == 3
    assert stats.kernel_drops == 0
    assert stats.peers == {"127.0.0.1": len(valid)}
    assert stats.bytes == sum(map(len, valid)) + sum(len(j) for items in garbage.values() for j in items) + sum(
        map(len, text))
    # What came over the socket decodes exactly like the file reader decodes the capture.
    got = concat(batches)
    want = read(shared_dir / NEXMON_4339).batch.select(slice(0, len(valid)))
    np.testing.assert_array_equal(got.csi, want.csi)
    np.testing.assert_array_equal(got.stream, want.stream)
    np.testing.assert_array_equal(got.seq, want.seq)
    assert np.isfinite(got.time).all()  # receive time stamped per datagram


def test_udp_esp32_lines_and_nexmon_on_one_port(shared_dir, payloads_4339):
    require("esp32_csi_tool")
    lines = csi_lines(shared_dir / ESP32_TOOL)
    header = (shared_dir / ESP32_TOOL).read_bytes().splitlines(keepends=True)[0]
    new_layout = pcap_payloads(shared_dir / NEXMON_43455)[:20]
    with UDPSource("127.0.0.1", 0) as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(header, ("127.0.0.1", src.port))  # a header row is not CSI, not an error
        for line, payload in zip(lines, payloads_4339):
            tx.sendto(line, ("127.0.0.1", src.port))
            tx.sendto(payload, ("127.0.0.1", src.port))
        tx.sendto(b"".join(lines[:3]), ("127.0.0.1", src.port))  # several lines in one datagram
        tx.sendto(lines[0].replace(b",[", b",[1 2 "), ("127.0.0.1", src.port))  # 130 values
        for payload in new_layout:
            tx.sendto(payload, ("127.0.0.1", src.port))
        want = 2 * len(lines) + 3 + len(new_layout)
        batches = collect(src, lambda s: s.packets + s.bad_total >= want)
        stats = src.stats()
    by_format = {}
    for b in batches:
        by_format[b.format] = by_format.get(b.format, 0) + len(b)
    assert by_format == {"esp32-csi-tool": len(lines) + 3, "nexmon": len(lines) + len(new_layout)}
    assert stats.bad_total == 1 and stats.ignored_lines == 1
    esp = concat([b for b in batches if b.format == "esp32-csi-tool"])
    assert esp.csi.shape[1:] == (1, 1, 64)
    file_rows = read(shared_dir / ESP32_TOOL).batches
    np.testing.assert_array_equal(esp.csi[:5], concat(file_rows).csi[:5])
    nexmon = concat([b for b in batches if b.chip == "43455c0"])
    assert np.isfinite(nexmon.rssi).all()  # the new header carries RSSI


def test_udp_esp_csi_lines_told_apart_from_csi_tool_lines(shared_dir):
    require("esp_csi")
    require("esp32_csi_tool")
    esp_csi = (shared_dir / ESP_CSI).read_bytes().splitlines(keepends=True)  # header + 14 lines
    tool = csi_lines(shared_dir / ESP32_TOOL)[:14]
    with open_source("udp://127.0.0.1:0?format=esp32") as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for a, b in zip(esp_csi, tool):
            tx.sendto(a, ("127.0.0.1", src.port))
            tx.sendto(b, ("127.0.0.1", src.port))
        batches = collect(src, lambda s: s.packets >= 27)
        stats = src.stats()
    formats = sorted({b.format for b in batches})
    assert n_rows(batches) == 27 and stats.ignored_lines == 1 and stats.bad_total == 0
    assert len(formats) == 2 and "esp32-csi-tool" in formats
    want = concat(read(shared_dir / ESP_CSI).batches).csi
    got = concat([b for b in batches if b.format != "esp32-csi-tool"]).csi
    np.testing.assert_array_equal(got, want[:13])


def test_udp_text_only_port_rejects_nexmon(payloads_4339):
    with open_source("udp://127.0.0.1:0?format=esp32") as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for payload in payloads_4339[:5]:
            tx.sendto(payload, ("127.0.0.1", src.port))
        collect(src, lambda s: s.bad_total >= 5)
        assert src.stats().bad.as_dict() == {"unknown_datagram": 5}


def test_udp_silence_is_reported_and_ends_with_the_next_packet(payloads_4339):
    with UDPSource("127.0.0.1", 0, silence_after=0.2) as src:
        assert src.stats().state == "open"
        assert src.read(0.3) == []  # a timeout yields nothing
        stats = src.stats()
        assert stats.state == "silent" and stats.silent_since == pytest.approx(stats.started)
        assert stats.silent_seconds >= 0.2
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(payloads_4339[0], ("127.0.0.1", src.port))
        collect(src, lambda s: s.packets >= 1)
        stats = src.stats()
        assert stats.state == "open" and stats.silent_since is None and stats.last_packet_time is not None
    assert src.stats().state == "closed"


def test_udp_iteration_survives_silence_and_stops_on_close_from_another_thread(payloads_4339):
    src = UDPSource("127.0.0.1", 0)
    got = []
    reader = threading.Thread(target=lambda: got.extend(src), daemon=True)
    reader.start()
    time.sleep(0.4)  # silence: the iterator keeps waiting
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for payload in payloads_4339[:10]:
        tx.sendto(payload, ("127.0.0.1", src.port))
    end = time.monotonic() + 10
    while n_rows(got) < 10 and time.monotonic() < end:
        time.sleep(0.02)
    src.close()
    reader.join(5)
    assert not reader.is_alive()
    assert n_rows(got) == 10


def test_udp_random_bytes_never_raise():
    rng = random.Random(7)
    with UDPSource("127.0.0.1", 0) as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 0
        for _ in range(300):
            size = rng.choice([0, 1, 2, 17, 18, 19, 274, 1042, 1500])
            body = bytes(rng.getrandbits(8) for _ in range(size))
            if rng.random() < 0.5:
                body = b"\x11\x11" + body[2:]  # looks like Nexmon
            tx.sendto(body, ("127.0.0.1", src.port))
            sent += 1
        collect(src, lambda s: s.packets + s.bad_total + s.ignored_lines >= sent, deadline=10)
        stats = src.stats()
    # Every datagram is accounted for once: a packet, a bad packet, or text that is not CSI
    # (a few random bytes can be printable). Nothing raised.
    assert stats.packets + stats.bad_total + stats.ignored_lines == sent
    assert stats.bad_total > 0.8 * sent


# -- serial over a real pseudo-terminal --------------------------------------------------------

class FakeESP32:
    """A pty whose slave is the "USB serial device"; a stable symlink plays /dev/serial/by-id/..."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master, self.slave = os.openpty()
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.ttyname(self.slave))

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # the pty buffer is small; the reader drains it concurrently
            view = view[os.write(self.master, view[:1024]):]

    def unplug(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:  # already unplugged
                pass


def write_in_background(device: FakeESP32, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=device.write, args=(data,), daemon=True)
    thread.start()
    return thread


def test_serial_lines_garbage_overlong_and_unplug(shared_dir, tmp_path):
    require("esp32_csi_tool")
    header = (shared_dir / ESP32_TOOL).read_bytes().splitlines(keepends=True)[0]
    lines = csi_lines(shared_dir / ESP32_TOOL)
    boot_log = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET),boot:0x13\r\nI (29) boot: ESP-IDF v4.3\r\n"
    device = FakeESP32(tmp_path / "ttyESP32")
    src = SerialSource(str(device.link), 921600, max_line=4096, backoff_min=0.05, backoff_max=0.2)
    try:
        assert src.connected and src.stats().state == "open"
        broken = lines[1].replace(b" ]", b" 1 ]")  # 129 values
        stream = (boot_log + header + b"".join(lines[:30]) + b"CSI_DATA,garbage\r\n" + b"\xff" * 5000
                  + b"\r\n" + broken + b"".join(lines[30:]))
        writer = write_in_background(device, stream)
        n_csi = len(lines)
        batches = collect(src, lambda s: s.packets >= n_csi and s.bad_total >= 3)
        writer.join(5)
        stats = src.stats()
        assert n_rows(batches) == stats.packets == n_csi
        assert stats.bad.counts["line_too_long"] == 1
        assert stats.bad.total == 3  # the overlong line, "CSI_DATA,garbage", the 129-value line
        assert stats.ignored_lines == 4  # three boot-log lines and the header row
        assert stats.peers == {str(device.link): n_csi}
        np.testing.assert_array_equal(concat(batches).csi, concat(read(shared_dir / ESP32_TOOL).batches).csi)

        # Unplug: the port fails, the source says so and keeps going.
        device.unplug()
        collect(src, lambda s: s.state == "disconnected", deadline=5)
        stats = src.stats()
        assert stats.state == "disconnected" and stats.disconnects == 1 and stats.last_error
        assert src.read(0.1) == []  # still no exception while the device is gone

        # Plug back in (a new pty behind the same stable path): reopened with backoff.
        device = FakeESP32(device.link)
        collect(src, lambda s: s.state == "open", deadline=5)
        writer = write_in_background(device, b"".join(lines[:10]))
        more = collect(src, lambda s: s.packets >= n_csi + 10)
        writer.join(5)
        stats = src.stats()
        assert n_rows(more) == 10 and stats.reconnects == 1 and stats.state == "open"
    finally:
        src.close()
        device.unplug()
    assert src.stats().state == "closed"


def test_serial_missing_port_raises_at_start_unless_asked_to_wait(tmp_path):
    with pytest.raises(SerialOpenError, match="ttyNOPE"):
        SerialSource(str(tmp_path / "ttyNOPE"))
    with open_source(f"serial://{tmp_path}/ttyNOPE?baud=115200&wait=1&backoff_min=0.05") as src:
        assert src.read(0.1) == []
        stats = src.stats()
        assert stats.state == "disconnected" and "ttyNOPE" in stats.last_error and stats.reconnects == 0
        # The board shows up later.
        device = FakeESP32(tmp_path / "ttyNOPE")
        try:
            collect(src, lambda s: s.state == "open", deadline=5)
            assert src.stats().state == "open"
        finally:
            device.unplug()


# -- file replay -------------------------------------------------------------------------------

def test_replay_as_fast_as_possible_keeps_order_and_content(shared_dir):
    path = shared_dir / NEXMON_4339
    with open_source(f"file:{path}?speed=0") as src:
        batches = list(src)
        stats = src.stats()
    capture = read(path)
    assert stats.state == "finished" and stats.packets == capture.n_packets == n_rows(batches)
    assert max(len(b) for b in batches) <= 256
    replayed = concat(batches)
    np.testing.assert_array_equal(replayed.packet_index, np.arange(capture.n_packets))
    np.testing.assert_array_equal(replayed.csi, capture.batch.csi)
    np.testing.assert_array_equal(replayed.time, capture.batch.time)


def test_replay_paces_like_the_recording(shared_dir):
    path = shared_dir / NEXMON_4339  # 14.97 s recorded
    src = open_source(f"file:{path}?speed=60")
    start = time.monotonic()
    batches = list(src)
    elapsed = time.monotonic() - start
    assert n_rows(batches) == 2850
    # Never earlier than the recording allows (a lower bound only: a loaded machine may be slower).
    assert elapsed >= 14.96 / 60 * 0.95
    assert len(batches) > 10  # delivered over time, not in one lump


def test_replay_counts_the_files_bad_records(shared_dir):
    require("esp32_csi_tool")
    path = shared_dir / ESP32_TOOL_TRUNCATED
    capture = read(path)
    with open_source(str(path), speed=0) as src:  # a bare existing path replays it
        batches = list(src)
        stats = src.stats()
    assert capture.bad.total >= 1
    assert stats.bad.as_dict() == capture.bad.as_dict()
    assert n_rows(batches) == capture.n_packets


def test_replay_loop_starts_over(shared_dir):
    require("esp32_csi_tool")
    with open_source(f"file:{shared_dir / ESP32_TOOL}?speed=0&loop=1") as src:
        got = 0
        for batch in src:
            got += len(batch)
            if got >= 150:
                break
        assert src.loops >= 2


# -- stdin ----------------------------------------------------------------------------------------

STDIN_SCRIPT = """
import json, sys
from edgecsi.firmware_bridge.sources import open_source
src = open_source(sys.argv[1])
rows = [len(b) for b in src]
print(json.dumps({"rows": sum(rows), "batches": len(rows), "stats": src.stats().as_dict()}))
"""


def run_stdin(data: bytes, uri: str = "-") -> dict:
    done = subprocess.run([sys.executable, "-c", STDIN_SCRIPT, uri], input=data, capture_output=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def test_stdin_lines_with_garbage(shared_dir):
    require("esp32_csi_tool")
    text = (shared_dir / ESP32_TOOL).read_bytes()
    n = len(csi_lines(shared_dir / ESP32_TOOL))
    out = run_stdin(b"boot noise\n" + text + b"CSI_DATA,AP,broken\n" + b"z" * 20000 + b"\n"
                    + csi_lines(shared_dir / ESP32_TOOL)[0].rstrip(b"\r\n"))  # last line has no newline
    assert out["rows"] == n + 1
    assert out["stats"]["state"] == "finished"
    assert out["stats"]["bad_total"] == 2 and out["stats"]["bad"]["line_too_long"] == 1
    assert out["stats"]["ignored_lines"] == 2  # boot noise, header row


def test_stdin_esp_csi_lines(shared_dir):
    require("esp_csi")
    lines = (shared_dir / ESP_CSI).read_bytes()
    out = run_stdin(lines)
    assert out["rows"] == 14 and out["stats"]["bad_total"] == 0


def test_stdin_live_pcap_stream(shared_dir):
    data = (shared_dir / NEXMON_4339).read_bytes()
    out = run_stdin(data + data[24:1500])  # ends inside a record, as a killed tcpdump would
    assert out["rows"] == 2850 + 1  # the file, then one whole record of the tail
    assert out["stats"]["bad"] == {"truncated": 1}


def test_stdin_live_pipe_survives_silence(shared_dir):
    """tcpdump -U -w - on a router: records arrive as they are captured, with pauses between."""
    data = (shared_dir / NEXMON_4339).read_bytes()
    record = 16 + 14 + 20 + 8 + 18 + 4 * 256
    r, w = os.pipe()
    with os.fdopen(r, "rb", buffering=0) as pipe, StdinSource(pipe, silence_after=0.2) as src:
        os.write(w, data[:24 + 10 * record + 100])  # header, 10 records and a piece of the 11th
        got = collect(src, lambda s: s.packets >= 10, deadline=10)
        assert n_rows(got) == 10
        assert src.read(0.3) == [] and src.stats().state == "silent"  # a pause: nothing, no error
        os.write(w, data[24 + 10 * record + 100:24 + 20 * record])
        got = collect(src, lambda s: s.packets >= 20, deadline=10)
        assert n_rows(got) == 10 and src.stats().state == "open"
        os.close(w)  # tcpdump ends
        assert collect(src, lambda s: s.state == "finished", deadline=10) == []
        assert src.stats().bad_total == 0


def test_stdin_whole_binary_file(shared_dir):
    path = shared_dir / "captures/intel5300/csikit_example.dat"
    out = run_stdin(path.read_bytes())
    assert out["rows"] == read(path).n_packets
    assert out["stats"]["state"] == "finished"


def test_stdin_source_on_an_in_memory_stream(shared_dir):
    require("esp32_csi_tool")
    import io

    text = (shared_dir / ESP32_TOOL).read_bytes()
    src = StdinSource(io.BytesIO(text))
    assert n_rows(list(src)) == len(csi_lines(shared_dir / ESP32_TOOL))


# -- URIs ----------------------------------------------------------------------------------------

def test_uri_errors_name_the_problem(shared_dir, tmp_path):
    with pytest.raises(SourceURIError, match="unknown option 'sped'"):
        open_source(f"file:{shared_dir / NEXMON_4339}?sped=2")
    with pytest.raises(SourceURIError, match="needs a port"):
        open_source("udp://127.0.0.1")
    with pytest.raises(SourceURIError, match="baud='fast'"):
        open_source("serial:///dev/ttyUSB0?baud=fast")
    with pytest.raises(SourceURIError, match="no such file"):
        open_source(str(tmp_path / "missing.pcap"))
    with pytest.raises(ValueError, match="unknown datagram format"):
        open_source("udp://127.0.0.1:0?format=intel")


def test_uri_forms(shared_dir):
    with open_source("udp://127.0.0.1:0?format=nexmon&chip=4339&rcvbuf=1048576") as src:
        assert isinstance(src, UDPSource) and src.decoder.chip == "4339" and src.rcvbuf >= 1048576
        assert src.uri == f"udp://127.0.0.1:{src.port}?format=nexmon&chip=4339&rcvbuf=1048576"
    with open_source(f"file://{shared_dir / NEXMON_4339}?speed=2.5&loop=yes") as src:
        assert src.speed == 2.5 and src.loop
    with open_source("-?format=esp32") as src:
        assert isinstance(src, StdinSource) and src.format == "esp32"
