"""The 802.11 MAC header that CSI tools log next to the CSI (Intel 0xC1 records, Atheros frame payloads)."""

from __future__ import annotations

import numpy as np

# Frame control, duration, three addresses, sequence control: the first 24 bytes of a data frame.
DOT11_HEADER = np.dtype([("fc", "<u2"), ("duration", "<u2"), ("addr1", "u1", (6,)), ("addr2", "u1", (6,)),
                         ("addr3", "u1", (6,)), ("seq_ctrl", "<u2")])


def transmitter_and_sequence(headers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(addr2 as uint64 48-bit MACs, 12-bit sequence numbers as int64) of DOT11_HEADER records."""
    addr2 = np.zeros((len(headers), 8), dtype=np.uint8)  # big-endian 64-bit: two zero bytes, then the address
    addr2[:, 2:] = headers["addr2"]
    return addr2.view(">u8")[:, 0].astype(np.uint64), (headers["seq_ctrl"] >> 4).astype(np.int64)
