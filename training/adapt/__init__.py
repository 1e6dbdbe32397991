"""Site adaptation: make a model trained in one room work in the next with few (or no) site labels.

    from edgecsi.training.adapt import adapt, TargetSpec, METHODS
    spec = TargetSpec(dataset=None, target="day=D2", pool="sequence=D2/e01_tx_rx", labelled_per_class=5)
    result = adapt("runs/har", "side", spec, out_dir="runs/har-site-d2")
    print(result.summary())       # accuracy on held-out target windows vs the source-only model

| method | module          | site labels | trains                               | per-site artefact       |
|--------|-----------------|-------------|--------------------------------------|-------------------------|
| fc     | fc_finetune.py  | a few       | head (or the trailing FC layers)     | head                    |
| side   | side_tuning.py  | a few       | side network + head + alpha          | side network, head      |
| ccsa   | ccsa.py         | a few       | all (CE + contrastive pairs)         | whole model             |
| lmmd   | lmmd.py         | none        | all (CE + LMMD, pseudo-labels)       | whole model             |
| aad    | aad.py          | none        | target encoder (adversarial + KD)    | encoder                 |

Every method takes ``(model, AdaptData, Config, seed=)`` and returns a ``MethodResult``; ``adapt``
writes a run directory ``load_run`` / ``export_run`` read (see ``run.py``). The gateway-side
counterpart without torch is ``edgecsi.edge.calibration`` (a numpy head on the exported embedding).
"""

from edgecsi.training.adapt.method import MethodResult, configure
from edgecsi.training.adapt.run import METHODS, AdaptResult, adapt, file_sha256, heldout_windows
from edgecsi.training.adapt.target import AdaptData, TargetSpec, TargetSplit, adapt_data, split_target

__all__ = ["METHODS", "AdaptData", "AdaptResult", "MethodResult", "TargetSpec", "TargetSplit", "adapt",
           "adapt_data", "configure", "file_sha256", "heldout_windows", "split_target"]

# Additive: "bidirectional" (bi-directional cross-domain generation) lives in edgecsi.training.generative
# and registers itself in METHODS here, after METHODS exists.
from edgecsi.training.generative.bidirectional import register as _register_bidirectional  # noqa: E402

_register_bidirectional()
