"""edgecsi: device-free WiFi sensing from CSI, trained in PyTorch, run on the gateway with onnxruntime."""

__version__ = "0.1.0"
