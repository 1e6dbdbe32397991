"""Parse speed: each edgecsi format reader next to csiread 1.4.1 and nexcsi 0.5.2, same files, same process.

    .venv/bin/python benchmarks/parse.py            # all formats
    .venv/bin/python benchmarks/parse.py --only nexmon --repeat 7 --json

Each real capture from ../shared/captures is repeated in memory until it holds
about ``--packets`` packets (records repeated after the file header; text
lines repeated), written once to a temporary file for the reference readers
(which only take paths), and parsed ``--repeat`` times by every reader; the
best time counts. edgecsi is timed on ``formats.<module>.read(bytes)``, the
others on their documented calls:

- csiread.Nexmon(path, chip, bw).read() for the old-header files;
  csiread.NexmonPull46 for 43455c0 (new header);
- nexcsi: decoder(device).read_pcap(path) + unpack(csi) (device per chip as in
  nexmon/README.txt: 4339 nexus5, 43455c0 raspberrypi, 4358 nexus6p, 4366c0 rtac86u);
- csiread.Intel(path, 3, 3).read();
- csiread.Atheros(path, 3, 3, tones=56).read(endian="little")  (big-endian reading segfaults);
- csiread.ESP32(path).read() fed only the CSI_DATA lines (it cannot skip a header).

Ratios are edgecsi / reference (above 1: edgecsi is faster).
Targets measured here before: csiread 0.67 M pkt/s (Nexmon 4339), 0.31 M (4366c0),
0.43 M (Intel), 0.30 M (ESP32 CSV); nexcsi 0.98 M (4339).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO.parent / "shared" / "captures"

NEXMON = {  # file -> (chip, nexcsi device, csiread class)
    "nexmon/csikit_example_4339.pcap": ("4339", "nexus5", "Nexmon"),
    "nexmon/csikit_example_43455c0.pcap": ("43455c0", "raspberrypi", "NexmonPull46"),
    "nexmon/csikit_example_4366c0.pcap": ("4366c0", "rtac86u", "Nexmon"),
    "nexmon/nexmon_csi_example_4358_80MHz.pcap": ("4358", "nexus6p", "Nexmon"),
}
INTEL = ["intel5300/sample_0x5_64_3000.dat", "intel5300/sample_0x1_ap.dat", "intel5300/csikit_example.dat"]
ATHEROS = ["atheros/ath_csi_1.dat"]
ESP32_TOOL = ["esp32-csi-tool/csikit_example_fast2_100hz_pitraffic.csv", "esp32-csi-tool/csikit_example_data.csv",
              "esp32-csi-tool/csikit_example_100hz_pitraffic.csv", "esp32-csi-tool/esp32csitool_example_csi.csv"]
ESP_CSI = ["esp-csi/esp32_csi_recv_router_readme.csv"]


# -- building big inputs from small real files --------------------------------------------------

def repeat_pcap(data: bytes, times: int) -> bytes:
    return data[:24] + data[24:] * times


def repeat_records(data: bytes, times: int) -> bytes:
    """Formats that are a plain sequence of records (Intel, Atheros .dat)."""
    return data * times


def csi_lines(data: bytes) -> bytes:
    lines = [line for line in data.splitlines(keepends=True) if line.startswith(b"CSI_DATA")]
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    return b"".join(lines)


def pcap_to_pcapng(data: bytes) -> bytes:
    """The same frames as pcapng (SHB, one IDB, one EPB per record), to time the pcapng reader."""
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    out = [struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28),
           struct.pack("<IIHHII", 1, 20, linktype, 0, 262144, 20)]
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16:pos + 16 + incl]
        ts = sec * 1_000_000 + usec
        pad = (-incl) % 4
        length = 32 + incl + pad
        out.append(struct.pack("<IIIIIII", 6, length, 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig)
                   + frame + b"\0" * pad + struct.pack("<I", length))
        pos += 16 + incl
    return b"".join(out)


# -- timing -------------------------------------------------------------------------------------

def timed(fn: Callable[[], int]) -> tuple[float, int]:
    """(seconds, packets) of one run, GC off while timing (as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        packets = fn()
        return time.perf_counter() - start, packets
    finally:
        gc.enable()


class Bench:
    def __init__(self, target_packets: int, repeat: int, tmp: Path) -> None:
        self.target = target_packets
        self.repeat = repeat
        self.tmp = tmp
        self.rows: list[dict] = []

    def times_for(self, packets_in_file: int) -> int:
        return max(1, round(self.target / max(packets_in_file, 1)))

    def run(self, label: str, blob: bytes, ours: Callable[[bytes], int],
            references: dict[str, Callable[[str], int]]) -> None:
        """Time every reader ``repeat`` times, interleaved (a load spike on this shared machine
        then hits all readers alike); the best run of each counts."""
        path = self.tmp / f"bench_{len(self.rows)}.bin"
        path.write_bytes(blob)
        row = {"file": label, "bytes": len(blob)}
        readers = {"edgecsi": lambda: ours(blob),
                   **{name: (lambda fn=fn: fn(str(path))) for name, fn in references.items()}}
        best = {name: float("inf") for name in readers}
        packets = {}
        for _ in range(self.repeat):
            for name, fn in list(readers.items()):
                try:
                    seconds, packets[name] = timed(fn)
                except Exception as exc:  # a reference reader that fails on real data is a result too
                    row[f"{name}_error"] = f"{type(exc).__name__}: {str(exc)[:80]}"
                    del readers[name]
                    continue
                best[name] = min(best[name], seconds)
        path.unlink()
        row["packets"] = packets["edgecsi"]
        for name in readers:
            row[f"{name}_pkt_s"] = packets[name] / best[name]
            if name != "edgecsi":
                row[f"{name}_packets"] = packets[name]
                row[f"ratio_vs_{name}"] = row["edgecsi_pkt_s"] / row[f"{name}_pkt_s"]
        self.rows.append(row)
        print(format_row(row), flush=True)


def format_row(row: dict) -> str:
    parts = [f"{row['file']:<52} {row['packets']:>8,} pkts  edgecsi {row['edgecsi_pkt_s'] / 1e6:6.3f} M/s"]
    for key in sorted(k for k in row if k.endswith("_pkt_s") and k != "edgecsi_pkt_s"):
        name = key[:-len("_pkt_s")]
        parts.append(f"{name} {row[key] / 1e6:6.3f} M/s (x{row[f'ratio_vs_{name}']:.2f})")
    for key in sorted(k for k in row if k.endswith("_error")):
        parts.append(f"{key[:-len('_error')]} FAILED ({row[key]})")
    return "  ".join(parts)


# -- per format ---------------------------------------------------------------------------------

def bench_nexmon(bench: Bench) -> None:
    import csiread
    from nexcsi import decoder

    from edgecsi.firmware_bridge.formats import nexmon_pcap

    for name, (chip, device, csiread_class) in NEXMON.items():
        data = (CAPTURES / name).read_bytes()
        n = nexmon_pcap.read(data).n_packets
        blob = repeat_pcap(data, bench.times_for(n))

        def ours(b: bytes, chip=chip) -> int:
            return nexmon_pcap.read(b, chip=chip).n_packets

        def ref_csiread(path: str, chip=chip, cls=csiread_class) -> int:
            reader = getattr(csiread, cls)(path, chip=chip, bw=80, if_report=False)
            reader.read()
            return int(reader.count)

        def ref_nexcsi(path: str, device=device) -> int:
            dec = decoder(device)
            samples = dec.read_pcap(path)
            dec.unpack(samples["csi"], zero_nulls=False, zero_pilots=False)
            return len(samples)

        bench.run(f"{name} x{bench.times_for(n)}", blob, ours,
                  {f"csiread.{csiread_class}": ref_csiread, "nexcsi": ref_nexcsi})


def bench_pcapng(bench: Bench) -> None:
    from edgecsi.firmware_bridge.formats import nexmon_pcap, pcapng

    name = "nexmon/csikit_example_4339.pcap"
    data = (CAPTURES / name).read_bytes()
    n = nexmon_pcap.read(data).n_packets
    blob = pcap_to_pcapng(repeat_pcap(data, bench.times_for(n)))
    bench.run(f"{name} as pcapng x{bench.times_for(n)}", blob, lambda b: pcapng.read(b, chip="4339").n_packets, {})


def bench_intel(bench: Bench) -> None:
    import csiread

    from edgecsi.firmware_bridge.formats import intel5300

    for name in INTEL:
        data = (CAPTURES / name).read_bytes()
        times = bench.times_for(intel5300.read(data).n_packets)

        def ref(path: str) -> int:
            reader = csiread.Intel(path, nrxnum=3, ntxnum=3, if_report=False)
            reader.read()
            return int(reader.count)

        bench.run(f"{name} x{times}", repeat_records(data, times), lambda b: intel5300.read(b).n_packets,
                  {"csiread.Intel": ref})


def bench_atheros(bench: Bench) -> None:
    import csiread

    from edgecsi.firmware_bridge.formats import atheros

    for name in ATHEROS:
        data = (CAPTURES / name).read_bytes()
        times = bench.times_for(atheros.read(data).n_packets)

        def ref(path: str) -> int:
            reader = csiread.Atheros(path, nrxnum=3, ntxnum=3, tones=56, if_report=False)
            reader.read(endian="little")  # NEVER "big": csiread 1.4.1 segfaults
            return int(reader.count)

        bench.run(f"{name} x{times}", repeat_records(data, times), lambda b: atheros.read(b).n_packets,
                  {"csiread.Atheros": ref})


def bench_esp32(bench: Bench) -> None:
    import csiread

    from edgecsi.firmware_bridge.formats import esp32_csi_tool

    for name in ESP32_TOOL:
        lines = csi_lines((CAPTURES / name).read_bytes())
        times = bench.times_for(lines.count(b"\n"))

        def ref(path: str) -> int:
            reader = csiread.ESP32(path, if_report=False)
            reader.read()
            return int(reader.count)

        bench.run(f"{name} (CSI_DATA lines) x{times}", lines * times, lambda b: esp32_csi_tool.read(b).n_packets,
                  {"csiread.ESP32": ref})


def bench_esp_csi(bench: Bench) -> None:
    from edgecsi.firmware_bridge.formats import esp_csi  # no reference reader parses esp-csi lines

    for name in ESP_CSI:
        data = (CAPTURES / name).read_bytes()
        header, _, body = data.partition(b"\n")
        times = bench.times_for(body.count(b"\n") + 1)
        body = body if body.endswith(b"\n") else body + b"\n"
        bench.run(f"{name} x{times}", header + b"\n" + body * times, lambda b: esp_csi.read(b).n_packets, {})


GROUPS = {"nexmon": bench_nexmon, "pcapng": bench_pcapng, "intel": bench_intel, "atheros": bench_atheros,
          "esp32": bench_esp32, "esp-csi": bench_esp_csi}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=60000, help="packets per input after repeating the file")
    parser.add_argument("--repeat", type=int, default=5, help="runs per reader; the best counts")
    parser.add_argument("--only", choices=sorted(GROUPS), action="append", help="format group(s) to run")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="edgecsi-parse-bench-") as tmp:
        bench = Bench(args.packets, args.repeat, Path(tmp))
        for name in args.only or GROUPS:
            try:
                GROUPS[name](bench)
            except ImportError as exc:  # a format module not in this build
                print(f"{name}: skipped ({exc})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(bench.rows, indent=2))
    print(f"(best of {args.repeat}; {os.cpu_count()} CPUs; python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
