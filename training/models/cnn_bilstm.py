"""``cnn_bilstm``: the cross-scene activity model (Sheng et al., IEEE IoT-J 2020).

The window ``x[batch, time, feature]`` is cut into ``segments`` equal segments along time (a tail
shorter than one segment is dropped: a static slice). One shared CNN encodes each segment
(features are channels, conv over the segment's time steps, mean over time, FC); the sequence of
segment codes feeds a multi-layer bidirectional LSTM; the embedding is the mean of the LSTM outputs
over segments; ``head`` is the final Linear. For a new scene the paper freezes CNN and Bi-LSTM and
fine-tunes only the fully connected layers (``body_parameters()`` / ``head``).

``n_time`` is fixed (the number of segments is a constant of the graph). The LSTM is a standard
``nn.LSTM(batch_first=True, bidirectional=True)`` with zero initial state: it exports to the ONNX
LSTM op and onnxruntime can dynamically quantize it (see specs/onnx-notes.md).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, conv_block, merge_hp

CNN_BILSTM_DEFAULTS = {"segments": 5, "channels": (32, 48), "kernel": 3, "segment_fc": 48,
                       "lstm_hidden": 48, "lstm_layers": 2, "dropout": 0.2}


class CNNBiLSTM(CSIModel):
    name = "cnn_bilstm"

    def __init__(self, n_features: int, n_time: int, n_outputs: int, **hp) -> None:
        hp = merge_hp(CNN_BILSTM_DEFAULTS, hp, self.name)
        hp["channels"] = [int(c) for c in hp["channels"]]
        segments = int(hp["segments"])
        if segments < 1 or n_time < segments:
            raise ValueError(f"{self.name}: need 1 <= segments <= n_time (got segments={segments}, n_time={n_time})")
        super().__init__(n_features, n_time, n_outputs, hp)
        self.segments = segments
        self.segment_len = n_time // segments
        blocks, c_in, length = [], n_features, self.segment_len
        for c_out in hp["channels"]:
            pool = length >= 4
            blocks.append(conv_block(c_in, c_out, int(hp["kernel"]), pool=pool))
            length = length // 2 if pool else length
            c_in = c_out
        self.segment_cnn = nn.Sequential(*blocks)
        self.segment_fc = nn.Sequential(nn.Linear(c_in, int(hp["segment_fc"])), nn.ReLU())
        layers = int(hp["lstm_layers"])
        self.lstm = nn.LSTM(int(hp["segment_fc"]), int(hp["lstm_hidden"]), num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=float(hp["dropout"]) if layers > 1 else 0.0)
        self.drop = nn.Dropout(float(hp["dropout"]))
        self.embed_dim = 2 * int(hp["lstm_hidden"])
        self._make_head()

    def features(self, z: torch.Tensor) -> torch.Tensor:
        s, seg = self.segments, self.segment_len
        h = z[:, : s * seg, :].reshape(-1, seg, self.n_features)       # [batch*segment, seg, feature]
        h = self.segment_cnn(h.transpose(1, 2)).mean(dim=2)            # [batch*segment, channel]
        h = self.segment_fc(h).reshape(-1, s, int(self.hp["segment_fc"]))  # [batch, segment, code]
        out, _ = self.lstm(h)                                          # [batch, segment, 2*hidden]
        return self.drop(out.mean(dim=1))
