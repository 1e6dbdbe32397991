"""read() speed of the ESP32-CSI-Tool reader against csiread.ESP32 on the same file.

Both readers get the same file of CSI_DATA lines (csiread.ESP32 cannot skip a
header row or a bad row), read from the page cache: edgecsi is timed on
``esp32_csi_tool.read(path.read_bytes())``, csiread on ``ESP32(path).read()``,
so both pay for reading the file. Runs alternate and swap order every round
(edgecsi, csiread, csiread, edgecsi, ...), the garbage collector is off while
timing (as timeit does), and each side reports its best CPU time: load from
other processes on a shared machine then hits both alike. Prints packets/s for
both and the ratio (above 1: edgecsi is faster).

    .venv/bin/python benchmarks/bench_esp32_csv.py [capture.csv] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Callable

from edgecsi.firmware_bridge.formats import esp32_csi_tool

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "captures" / "esp32-csi-tool" / \
    "csikit_example_fast2_100hz_pitraffic.csv"


def _cpu(fn: Callable[[], int]) -> tuple[float, int]:
    """(CPU seconds, packets) of one run, GC off while timing."""
    gc.collect()
    gc.disable()
    try:
        t = time.process_time()
        packets = fn()
        return time.process_time() - t, packets
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    try:
        import csiread
    except ImportError:
        csiread = None
    lines = [line for line in args.path.read_bytes().splitlines(keepends=True) if line.startswith(b"CSI_DATA")]
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.csv"
        body.write_bytes(b"".join(lines))

        def ours() -> int:
            return esp32_csi_tool.read(body.read_bytes()).n_packets

        def theirs() -> int:
            reader = csiread.ESP32(str(body), if_report=False)
            reader.read()
            return int(reader.count)

        readers = {"edgecsi": ours}
        packets = {"edgecsi": ours()}  # a first run each: checks them, puts the file in the page cache
        failed = "csiread not installed: no reference"
        if csiread is not None:
            try:
                packets["csiread"] = theirs()
                readers["csiread"] = theirs
            except Exception as exc:  # csiread loses a whole file to one odd row: a result too
                failed = f"csiread.ESP32 failed: {type(exc).__name__}: {str(exc)[:80]}"
        best = {name: float("inf") for name in readers}
        order = list(readers)
        for _ in range(args.rounds):
            for name in order:
                best[name] = min(best[name], _cpu(readers[name])[0])
            order.reverse()
    n = packets["edgecsi"]
    print(f"{args.path.name}: {len(lines)} CSI_DATA lines, best CPU time of {args.rounds} interleaved runs")
    print(f"edgecsi esp32_csi_tool.read: {best['edgecsi'] * 1e3:7.2f} ms  {n / best['edgecsi'] / 1e6:.3f} M pkt/s"
          f"  ({n} packets)")
    if "csiread" not in readers:
        print(failed)
        return
    m = packets["csiread"]
    print(f"csiread.ESP32.read:          {best['csiread'] * 1e3:7.2f} ms  {m / best['csiread'] / 1e6:.3f} M pkt/s"
          f"  ({m} packets)")
    print(f"speed ratio edgecsi / csiread: {best['csiread'] / best['edgecsi']:.2f}")


if __name__ == "__main__":
    main()
