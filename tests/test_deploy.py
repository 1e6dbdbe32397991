"""Deploy over a real OpenSSH server on 127.0.0.1 into a local directory acting as the gateway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bundle_factory import make_bundle
from edgecsi.edge.bundle import BundleError
from edgecsi.export.deploy import DeployError, deploy
from services import SshServer


@pytest.fixture
def sshd(tmp_path):
    server = SshServer(tmp_path)
    yield server
    server.stop()


def test_deploy_over_ssh_swaps_current_and_rolls_back_on_bad_health(tmp_path, sshd):
    root = tmp_path / "gateway"
    v1 = make_bundle(tmp_path / "b1", version=1)
    v2 = make_bundle(tmp_path / "b2", version=2, seed=1)
    healthy = f"test -f {root}/current/manifest.json && cat {root}/current/manifest.json | head -c 0 && echo ok"
    restarts = root / "restarts.log"
    restart = f"echo restart >> {restarts}"

    first = deploy(v1, sshd.target, root=str(root), ssh_options=sshd.ssh_options, restart_cmd=restart,
                   health_cmd=healthy, health_timeout=10)
    assert first.previous is None and not first.rolled_back and first.health == "ok"
    current = os.readlink(root / "current")
    assert current.startswith("bundles/1-")
    assert (root / "current" / "model.onnx").read_bytes() == (v1 / "model.onnx").read_bytes()
    assert "Type=notify" in (root / "edgecsi-agent.service").read_text()

    # The new bundle's agent never becomes healthy: the link goes back to v1.
    with pytest.raises(DeployError, match="rolled back to bundles/1-"):
        deploy(v2, sshd.target, root=str(root), ssh_options=sshd.ssh_options, restart_cmd=restart,
               health_cmd="false", health_timeout=1)
    assert os.readlink(root / "current") == current
    assert restarts.read_text().count("restart") == 3  # v1, v2, and the rollback

    second = deploy(v2, sshd.target, root=str(root), ssh_options=sshd.ssh_options, restart_cmd=restart,
                    health_cmd=healthy, health_timeout=10)
    assert second.previous == current
    assert os.readlink(root / "current").startswith("bundles/2-")


def test_deploy_to_local_root_and_refuse_tampered_bundle(tmp_path):
    bundle = make_bundle(tmp_path / "b", version=3)
    result = deploy(bundle, str(tmp_path / "gw"), restart_cmd="true", health_cmd="echo ok", health_timeout=5)
    assert Path(result.deployed, "manifest.json").exists()
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        deploy(bundle, str(tmp_path / "gw"), restart_cmd="true", health_cmd="echo ok")


def test_deploy_restarts_the_real_agent_and_rolls_back_a_bundle_it_cannot_run(tmp_path, sshd, nexmon_bundle):
    import sys

    from services import free_port

    good = nexmon_bundle
    unusable = make_bundle(tmp_path / "unusable", version=21)  # verifies, but carries no signal pipeline
    root = tmp_path / "gw"
    http, udp = free_port(), free_port()
    py = sys.executable
    restart = (f"if [ -f {root}/agent.pid ]; then kill $(cat {root}/agent.pid) 2>/dev/null; sleep 0.5; fi; "
               f"nohup {py} -m edgecsi.cli run --bundle {root}/current --source udp://127.0.0.1:{udp} "
               f"--http 127.0.0.1:{http} --quiet > {root}/agent.log 2>&1 & echo $! > {root}/agent.pid")
    health = (f"{py} -c \"import urllib.request; "
              f"print(urllib.request.urlopen('http://127.0.0.1:{http}/health', timeout=1).read().decode())\"")
    try:
        ok = deploy(good, sshd.target, root=str(root), ssh_options=sshd.ssh_options, restart_cmd=restart,
                    health_cmd=health, health_timeout=30)
        assert '"bundle_version": 10' in ok.health
        with pytest.raises(DeployError, match="rolled back"):
            deploy(unusable, sshd.target, root=str(root), ssh_options=sshd.ssh_options, restart_cmd=restart,
                   health_cmd=health, health_timeout=8)
        assert os.readlink(root / "current") == os.path.relpath(ok.deployed, root)
        # The rollback restarted the agent on the good bundle, and it answers again.
        import json
        import time
        import urllib.request

        deadline = time.monotonic() + 20
        version = None
        while time.monotonic() < deadline and version != 10:
            try:
                version = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=1).read())[
                    "bundle_version"]
            except OSError:
                time.sleep(0.2)
        assert version == 10
    finally:
        pid_file = root / "agent.pid"
        if pid_file.exists():
            subprocess_kill = __import__("subprocess").run
            subprocess_kill(["kill", pid_file.read_text().strip()], check=False)
