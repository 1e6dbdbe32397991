"""read() speed of the ESP32-CSI-Tool reader against csiread.ESP32 on the same rows.

Prints packets/s for both and the ratio; runs alternate (edgecsi, csiread,
edgecsi, ...) and each side reports its best CPU time, so load from other
processes on a shared machine hits both about equally.

    .venv/bin/python benchmarks/bench_esp32_csv.py [capture.csv] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edgecsi.firmware_bridge.formats import esp32_csi_tool

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "captures" / "esp32-csi-tool" / \
    "csikit_example_fast2_100hz_pitraffic.csv"


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    data = args.path.read_bytes()
    n = esp32_csi_tool.read(data).n_packets
    try:
        import csiread
    except ImportError:
        csiread = None
    with tempfile.TemporaryDirectory() as tmp:
        # csiread.ESP32 cannot skip a header row or a bad row: give it the CSI_DATA lines only
        body = Path(tmp) / "body.csv"
        body.write_bytes(b"".join(line for line in data.splitlines(keepends=True) if line.startswith(b"CSI_DATA")))

        def theirs() -> None:
            reader = csiread.ESP32(str(body), if_report=False)
            reader.read()

        ours_best = theirs_best = float("inf")
        for _ in range(args.rounds):
            ours_best = min(ours_best, _cpu(lambda: esp32_csi_tool.read(data)))
            if csiread is not None:
                theirs_best = min(theirs_best, _cpu(theirs))
    print(f"{args.path.name}: {n} packets")
    print(f"edgecsi esp32_csi_tool.read: {ours_best * 1e3:7.2f} ms  {n / ours_best / 1e6:.3f} M pkt/s")
    if csiread is not None:
        print(f"csiread.ESP32 (body lines): {theirs_best * 1e3:7.2f} ms  {n / theirs_best / 1e6:.3f} M pkt/s")
        print(f"speed ratio edgecsi / csiread: {theirs_best / ours_best:.2f}")


if __name__ == "__main__":
    main()
