"""Generative tools for CSI windows ``x[window, time, feature]``: repair corrupted windows, learn codes that
cluster an unlabelled site, bridge two sites, and resample without aliasing.

    from edgecsi.training.generative import (CorruptionConfig, corrupt, train_unir, UNIRConfig, repair,
                                             export_repair_onnx, train_aae, AAEConfig, encode)

    y, keep = corrupt(x, CorruptionConfig(packet_loss=0.2, burst=3, subcarrier_drop=0.1, agc_db=1.0), seed=0)
    result = train_unir(y_train, CorruptionConfig(), UNIRConfig(steps=300))    # corrupted windows only
    x_hat = repair(result.model, y)                                           # [w, t, f] -> [w, t, f]
    export_repair_onnx(result.model, "repair.onnx")     # gateway: edgecsi.edge.repair.OnnxRepair

    aae = train_aae(site_x, AAEConfig(latent=16, pool="mean")).model
    labels = kmeans(encode(aae, site_x), k)                                   # deep clustering of a site

    # site adaptation: edgecsi adapt --method bidirectional (after register())

| module            | job                                                                              |
|-------------------|----------------------------------------------------------------------------------|
| corruption.py     | F_theta: bursty packet loss, dead subcarriers, AGC gain, I/Q phase offsets       |
| classical.py      | numpy baselines: interpolation, Hampel (the pipeline's), per-packet gain levelling|
| repair_net.py     | UNIR generator G (keeps what arrived, fills the rest) and critic D               |
| unir.py           | UNIR training (Pajot et al. 2019), repair, save/load                             |
| repair_onnx.py    | G -> ONNX with dynamic batch and time, torch/onnxruntime check                   |
| aae.py            | adversarial autoencoder: Gaussian / mixture prior, conditional, clustering       |
| clustering.py     | k-means, NMI / ARI / cluster accuracy                                            |
| translator.py     | window translators and domain critics                                            |
| bidirectional.py  | bi-directional cross-domain generation, an ``adapt`` method                      |
| equivariance.py   | shift-equivariance of strided vs BlurPool encoders                               |
| runs.py           | what the ``edgecsi generative`` commands run                                     |
| report.py         | the experiments behind docs/results/generative.md                                |

``BlurPool1d`` / ``BlurUpsample1d`` live with the model zoo (``edgecsi.training.models.blurpool``); every
down/up-sampling in this package uses them.
"""

from edgecsi.training.generative.aae import AAEConfig, train_aae, encode, sample, augment_with_samples
from edgecsi.training.generative.classical import BASELINES, hampel_repair, interpolate_missing, normalise_gain
from edgecsi.training.generative.clustering import cluster_scores, kmeans, raw_features
from edgecsi.training.generative.corruption import CorruptionConfig, CorruptionModel, corrupt, observed_mask
from edgecsi.training.generative.repair_net import RepairNet
from edgecsi.training.generative.unir import UNIRConfig, load_repair, relative_error, repair, save_repair, train_unir

__all__ = ["AAEConfig", "train_aae", "encode", "sample", "augment_with_samples", "BASELINES", "hampel_repair",
           "interpolate_missing", "normalise_gain", "cluster_scores", "kmeans", "raw_features", "CorruptionConfig",
           "CorruptionModel", "corrupt", "observed_mask", "RepairNet", "check_repair_onnx", "export_repair_onnx",
           "UNIRConfig", "load_repair", "relative_error", "repair", "save_repair", "train_unir"]


def __getattr__(name: str):
    # The ONNX exporter pulls in onnx; load it only when asked for (importing this package stays light
    # for the adapt registry, which imports bidirectional.py from here).
    if name in ("export_repair_onnx", "check_repair_onnx"):
        from edgecsi.training.generative import repair_onnx

        return getattr(repair_onnx, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
