"""CSI simulator: labelled captures of people in rooms and doorways, as real chips report them.

>>> from edgecsi.training.simulate import simulate, write_simulation
>>> result = simulate("presence", fmt="nexmon-43455c0", seconds=10, rate_hz=100, seed=0)
>>> result.batch.csi.shape            # [packet, rx, tx, subcarrier]
>>> result.labels["presence"]         # one label per packet
>>> write_simulation(result, "x.pcap")  # x.pcap + x.labels.csv + x.labels.json

Modules: ``scene`` (rooms, radios, furniture), ``tracks`` and ``bodies`` (people and
their motion), ``channel`` (image sources + scatterers -> H(f)), ``impairments``,
``timing``, ``quantize``, ``dead_bins`` (what the receiver and firmware add),
``chips`` (per-chip layout), ``scenarios`` (who does what, labels), ``simulator``
(the pipeline), ``writing`` (files via the firmware_bridge writers).
"""

from edgecsi.training.simulate.chips import CHIPS, ChipProfile, chip_profile
from edgecsi.training.simulate.scenarios import SCENARIOS
from edgecsi.training.simulate.simulator import SimResult, simulate
from edgecsi.training.simulate.writing import read_labels, write_simulation

__all__ = ["CHIPS", "SCENARIOS", "ChipProfile", "SimResult", "chip_profile", "read_labels", "simulate",
           "write_simulation"]
