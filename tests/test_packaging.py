"""The gateway side installs and runs without torch, scipy or onnx; the wheel maps the card's folders."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import zipfile

import edgecsi
import edgecsi.edge
import edgecsi.firmware_bridge

HEAVY = ("torch", "scipy", "onnx", "sklearn", "matplotlib", "safetensors")

IMPORT_ALL = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
""" % (HEAVY,)


def _modules(package) -> list[str]:
    return [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_every_gateway_module_imports_without_heavy_dependencies():
    names = _modules(edgecsi.edge) + _modules(edgecsi.firmware_bridge) + ["edgecsi.cli"]
    assert "edgecsi.edge.agent" in names and "edgecsi.firmware_bridge.formats.nexmon_pcap" in names
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL, json.dumps(names)], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(out.stdout) == []


def test_wheel_holds_one_namespace_built_from_the_card_folders(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), "."], check=True, timeout=300, cwd=edgecsi.__path__[0] + "/..")
    wheel = next(tmp_path.glob("edgecsi-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("edgecsi/cli/__init__.py", "edgecsi/frames.py", "edgecsi/edge/agent.py",
                     "edgecsi/firmware_bridge/formats/esp32_csi_tool.py", "edgecsi/training/train.py",
                     "edgecsi/export/export_run.py"):
        assert expected in names, expected
    assert not any(n.startswith(("edge/", "training/", "export/", "firmware_bridge/", "tests/")) for n in names)
