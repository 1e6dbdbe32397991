"""Raw bytes from real CSI firmware -> :class:`edgecsi.frames.CSIBatch`.

Never imports torch, scipy or onnx: this runs on the gateway.
"""

from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.read import read, sniff

__all__ = ["Capture", "read", "sniff"]
