"""The model zoo: one module per family, one registry.

    from edgecsi.training.models import build_model, MODELS
    model = build_model("cnn1d", n_features=56, n_time=50, n_outputs=10, channels=(16, 32))
    logits = model(x)            # x float32[batch, time, feature], raw (normalised inside)
    z = model.embed(x)           # [batch, model.embed_dim], input of model.head (an nn.Linear)

Every model: input ``x[batch, time, feature]`` float32; ``embed``; ``head``; ``arch()`` (what
``build_model(**arch)`` needs to rebuild it); export-safe (ONNX opset 17, int8 static quantization).

| name          | family (module)        | for                                       | time length |
|---------------|------------------------|-------------------------------------------|-------------|
| cnn1d         | cnn1d.py (AdapLoc-like)| localization: RP classes or coordinates    | any / fixed |
| mlp           | mlp.py                 | localization fingerprints                  | fixed       |
| presence_cnn  | presence.py            | presence (empty / occupied)                | any         |
| count_dnn     | mlp.py (DeepCount-like)| crowd counting, regression or classes      | fixed       |
| cnn_bilstm    | cnn_bilstm.py          | cross-scene activity (CNN/segment->BiLSTM) | fixed       |
| activity_cnn  | cnn1d.py               | activity (plain 1D-CNN over time)          | any         |
| object_cnn    | concealed.py           | concealed metal/liquid, + majority_vote    | any         |
| side_tuned    | side_tuned.py          | site adaptation: frozen base + side network| base & side |
| motion_cnn    | motion.py              | person-independent activity (per-window motion features) | any |
| ensemble      | ensemble.py            | K members of one family, outputs averaged (``combine``) | as base |
"""

from __future__ import annotations

from edgecsi.training.models.base import INPUT_LAYOUT, CSIModel
from edgecsi.training.models.cnn1d import CNN1D, ActivityCNN
from edgecsi.training.models.cnn_bilstm import CNNBiLSTM
from edgecsi.training.models.ensemble import Ensemble, combine
from edgecsi.training.models.concealed import ObjectCNN, majority_vote
from edgecsi.training.models.mlp import MLP, CountDNN
from edgecsi.training.models.motion import MotionCNN
from edgecsi.training.models.presence import PresenceCNN
from edgecsi.training.models.side_tuned import SideTuned

MODELS: dict[str, type[CSIModel]] = {
    cls.name: cls for cls in (CNN1D, MLP, PresenceCNN, CountDNN, CNNBiLSTM, ActivityCNN, ObjectCNN, SideTuned,
                MotionCNN, Ensemble)
}

#: The model ``train`` uses when none is named, per task.
DEFAULT_MODEL = {
    "activity": "activity_cnn",
    "localization": "cnn1d",
    "counting": "count_dnn",
    "presence": "presence_cnn",
    "concealed": "object_cnn",
}


def build_model(name: str, n_features: int, n_time: int, n_outputs: int, **hp) -> CSIModel:
    """A freshly initialised model ``name``; ``hp`` override that family's defaults (unknown keys raise)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    return cls(n_features, n_time, n_outputs, **hp)


def build_from_arch(arch: dict) -> CSIModel:
    """Rebuild from ``model.arch()`` (as saved in a run's config.json under ``model``)."""
    return build_model(arch["name"], arch["n_features"], arch["n_time"], arch["n_outputs"], **arch.get("hp", {}))


__all__ = ["INPUT_LAYOUT", "CSIModel", "MODELS", "DEFAULT_MODEL", "build_model", "build_from_arch",
           "majority_vote", "combine"]
