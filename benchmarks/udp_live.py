"""Live UDP load: real Nexmon payloads sent to 127.0.0.1 at a fixed rate, received by UDPSource.

    .venv/bin/python benchmarks/udp_live.py                 # 5,000 packets/s for 10 s
    .venv/bin/python benchmarks/udp_live.py --rate 20000 --seconds 5 --json

A sender subprocess replays the UDP payloads of the real 4339 capture
(../shared/captures/nexmon/csikit_example_4339.pcap), each stamped with its
send index in the 802.11 sequence field (index mod 4096), at ``--rate``
datagrams per second. This process receives them through
``open_source("udp://127.0.0.1:PORT")`` and checks that nothing was lost that
the kernel delivered:

    received + kernel_drops == sent     (kernel_drops: the socket's drop counter)
    sequence gaps seen by the receiver == kernel_drops

It prints the receiver's CPU time (this process only; the sender is another
process) per packet and as a share of one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO.parent / "shared" / "captures" / "nexmon" / "csikit_example_4339.pcap"
SEQ_MODULO = 4096  # 12-bit 802.11 sequence number


def load_payloads(path: Path = CAPTURE) -> list[bytes]:
    from edgecsi.firmware_bridge.sources.pcap_stream import PcapStream, udp_payload

    stream = PcapStream(source=str(path))
    return [udp_payload(frame, stream.linktype) for _, frame in stream.feed(path.read_bytes())]


def stamped(payload: bytes, index: int) -> bytes:
    """The payload with Sequence Control = (index mod 4096) << 4 (bytes 10..11, little-endian)."""
    seq_ctl = ((index % SEQ_MODULO) << 4).to_bytes(2, "little")
    return payload[:10] + seq_ctl + payload[12:]


def send(port: int, rate: float, seconds: float) -> dict:
    """Send ``rate`` datagrams/s for ``seconds``; paced in 1 ms steps."""
    import socket

    payloads = load_payloads()
    total = int(rate * seconds)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = ("127.0.0.1", port)
    sent = 0
    start = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            tx.sendto(stamped(payloads[sent % len(payloads)], sent), address)
            sent += 1
        time.sleep(0.0005)
    wall = time.perf_counter() - start
    return {"sent": sent, "send_wall_s": round(wall, 3), "send_rate": round(sent / wall, 1)}


def sequence_gaps(seq: np.ndarray, sent: int) -> int:
    """Datagrams missing from ``seq`` (received stamps, in order) of ``sent`` stamped 0, 1, 2, ...

    Each step should be +1 mod 4096; a step of k means k - 1 missing. Loss bursts
    of 4096 or more would alias, far beyond any socket buffer here.
    """
    if seq.size == 0:
        return sent
    before = int(seq[0])  # stamps 0 .. seq[0]-1 never arrived
    inside = int(((np.diff(seq) - 1) % SEQ_MODULO).sum())
    after = (sent - 1 - int(seq[-1])) % SEQ_MODULO
    return before + inside + after


def receive(rate: float, seconds: float, *, rcvbuf: int | None = None) -> dict:
    """Start the sender, receive everything, return the accounting and CPU use."""
    from edgecsi.firmware_bridge.sources.udp import UDPSource

    options = {} if rcvbuf is None else {"rcvbuf": rcvbuf}
    with UDPSource("127.0.0.1", 0, format="nexmon", **options) as src:
        sender = subprocess.Popen([sys.executable, __file__, "--send", str(src.port), "--rate", str(rate),
                                   "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
        seqs: list[np.ndarray] = []
        received = batches = 0
        cpu0 = wall0 = cpu1 = wall1 = None  # at the first / after the last packet
        quiet_since = None
        while True:
            got = src.read(0.05)
            if got:
                if cpu0 is None:
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                for batch in got:
                    seqs.append(batch.seq)
                    received += len(batch)
                batches += len(got)
                cpu1, wall1 = time.process_time(), time.perf_counter()
            if sender.poll() is None:
                continue
            # Sender finished: drain until the socket has been empty for a moment.
            if got:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.perf_counter()
            elif time.perf_counter() - quiet_since > 0.3:
                break
        cpu = (cpu1 - cpu0) if cpu0 is not None else 0.0
        wall = (wall1 - wall0) if wall0 is not None else 0.0
        sender_report = json.loads(sender.stdout.read())
        stats = src.stats()
    sent = sender_report["sent"]
    seq = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    gaps = sequence_gaps(seq, sent)
    drops = stats.kernel_drops or 0
    return {
        "rate": rate,
        "seconds": seconds,
        **sender_report,
        "received": received,
        "batches": batches,
        "mean_batch_rows": round(received / max(batches, 1), 2),
        "kernel_drops": stats.kernel_drops,
        "seq_gaps": gaps,
        "unexplained_loss": sent - received - drops,
        "bad": stats.bad.as_dict(),
        "rcvbuf": src.rcvbuf,
        "receiver_cpu_s": round(cpu, 3),
        "receiver_wall_s": round(wall, 3),
        "receiver_cpu_percent_of_core": round(100 * cpu / wall, 1) if wall > 0 else None,
        "receiver_cpu_us_per_packet": round(1e6 * cpu / max(received, 1), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000.0, help="datagrams per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rcvbuf", type=int, default=None, help="socket receive buffer to ask for")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--send", type=int, metavar="PORT", help=argparse.SUPPRESS)  # sender subprocess mode
    args = parser.parse_args(argv)
    if args.send is not None:
        print(json.dumps(send(args.send, args.rate, args.seconds)))
        return 0
    result = receive(args.rate, args.seconds, rcvbuf=args.rcvbuf)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"sent {result['sent']:,} datagrams at {result['send_rate']:,.0f}/s (asked {args.rate:,.0f}/s) "
              f"for {result['send_wall_s']:.2f} s")
        print(f"received {result['received']:,}  kernel drops {result['kernel_drops']}  "
              f"sequence gaps {result['seq_gaps']}  unexplained loss {result['unexplained_loss']}  "
              f"bad {result['bad'] or 0}")
        print(f"receiver CPU {result['receiver_cpu_s']:.2f} s over {result['receiver_wall_s']:.2f} s = "
              f"{result['receiver_cpu_percent_of_core']:.1f} % of one core, "
              f"{result['receiver_cpu_us_per_packet']:.1f} us/packet "
              f"(mean {result['mean_batch_rows']:.1f} packets per batch; SO_RCVBUF {result['rcvbuf']:,} B)")
    ok = result["unexplained_loss"] == 0 and result["seq_gaps"] == (result["kernel_drops"] or 0) \
        and not result["bad"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
