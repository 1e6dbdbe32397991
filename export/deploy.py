"""Deploy a bundle to a gateway: copy, verify on the far side, swap ``current``, restart, check, roll back.

Layout on the gateway (``root``, default ``/var/lib/edgecsi``)::

    root/bundles/<version>-<sha8>/   one directory per deployed bundle (never modified)
    root/current -> bundles/...      the bundle the agent runs (a symlink, swapped atomically)
    root/edgecsi-agent.service       the systemd unit (Type=notify, watchdog)
    root/install.sh                  installs the unit and the Python package on the gateway

``--to user@host[:port]`` goes over SSH (the system ``ssh``/``scp`` clients, with
BatchMode so nothing ever prompts); ``--to /some/dir`` deploys into a local root,
which is how a gateway deploys to itself and how the tests run without a network.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecsi.edge.bundle import MANIFEST, load_bundle
from edgecsi.errors import EdgeCSIError


class DeployError(EdgeCSIError):
    pass


# glibc settings for the agent process. One arena per thread would hold on to memory the agent no
# longer uses; and glibc's default mmap threshold rises after every large free, so the arrays of a
# packet burst end up on the heap and stay resident. Measured with benchmarks/agent.py's bundle after
# 1k-20k packets/s bursts on one x86 core: RSS 127-137 MB with the default, 100-103 MB with a fixed
# 1 MB threshold; the price is CPU at extreme rates (no drops up to 10k packets/s either way; at 20k/s
# the default kept up and the 1 MB threshold lost about a third). A 128 kB threshold gave 91-95 MB
# but dropped packets at 10k/s. A gateway sees 100-1,000 packets/s per link and has little memory.
AGENT_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "1048576"}

UNIT_TEMPLATE = """[Unit]
Description=edgecsi WiFi sensing agent
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={python} -m edgecsi.cli run --bundle {root}/current {sources} --event-log {root}/state/events.db --http 127.0.0.1:{http_port}
ExecReload=/bin/kill -HUP $MAINPID
{malloc_env}
Restart=on-failure
RestartSec=2
WatchdogSec=30
User=edgecsi
Group=edgecsi
SupplementaryGroups=dialout
StateDirectory=edgecsi
ProtectSystem=strict
ReadWritePaths={root}
ProtectHome=yes
NoNewPrivileges=yes
PrivateTmp=yes
# Serial sources: PrivateDevices would hide /dev/ttyUSB*, so allow just those.
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw

[Install]
WantedBy=multi-user.target
"""

INSTALL_TEMPLATE = """#!/bin/sh
# Install the edgecsi agent as a systemd service on this gateway (run as root).
set -eu
id edgecsi >/dev/null 2>&1 || useradd --system --home {root} --shell /usr/sbin/nologin edgecsi
mkdir -p {root}/state && chown -R edgecsi:edgecsi {root}
{python} -m pip install --upgrade 'edgecsi'
install -m 0644 {root}/edgecsi-agent.service /etc/systemd/system/edgecsi-agent.service
systemctl daemon-reload
systemctl enable --now edgecsi-agent.service
"""


def render_unit(root: str, sources: list[str], *, python: str = "/usr/bin/python3", http_port: int = 8765) -> str:
    src = " ".join(f"--source {shlex.quote(s)}" for s in sources)
    malloc_env = "\n".join(f"Environment={k}={v}" for k, v in AGENT_MALLOC_ENV.items())
    return UNIT_TEMPLATE.format(root=root, sources=src, python=python, http_port=http_port, malloc_env=malloc_env)


def render_install(root: str, *, python: str = "/usr/bin/python3") -> str:
    return INSTALL_TEMPLATE.format(root=root, python=python)


@dataclass
class Target:
    """Where to deploy: a local directory or ``user@host[:port]`` plus the remote root."""

    spec: str
    root: str
    ssh_options: list[str] = field(default_factory=list)

    @property
    def remote(self) -> bool:
        return not (self.spec.startswith("/") or self.spec.startswith(".") or Path(self.spec).exists())

    def _ssh_base(self) -> list[str]:
        host, _, port = self.spec.partition(":") if not self.spec.startswith("[") else (self.spec, "", "")
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *self.ssh_options]
        if port:
            cmd += ["-p", port]
        return cmd + [host]

    def run(self, script: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a POSIX shell script on the target."""
        if self.remote:
            cmd = self._ssh_base() + ["sh", "-c", shlex.quote(script)]
        else:
            cmd = ["sh", "-c", script]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise DeployError(f"{self.spec}: command failed ({proc.returncode}): {script.splitlines()[0]}...\n"
                              f"{proc.stderr.strip()}")
        return proc

    def copy_dir(self, local: Path, remote_dir: str) -> None:
        if not self.remote:
            subprocess.run(["cp", "-a", f"{local}/.", remote_dir], check=True)
            return
        host, _, port = self.spec.partition(":")
        # tar over ssh: one connection, keeps modes, no rsync needed on the gateway.
        tar = subprocess.Popen(["tar", "-C", str(local), "-cf", "-", "."], stdout=subprocess.PIPE)
        ssh = subprocess.run(self._ssh_base() + [f"tar -C {shlex.quote(remote_dir)} -xf -"], stdin=tar.stdout,
                             capture_output=True, text=True, timeout=300)
        tar.wait()
        if ssh.returncode != 0 or tar.returncode != 0:
            raise DeployError(f"{self.spec}: copying the bundle failed: {ssh.stderr.strip()}")


@dataclass
class DeployResult:
    target: str
    deployed: str  # bundle directory on the gateway
    previous: str | None
    rolled_back: bool
    health: str
    seconds: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _checksum_script(bundle_dir: str, manifest: dict) -> str:
    lines = "\n".join(f"{entry['sha256']}  {name}" for name, entry in manifest["files"].items())
    return f"cd {shlex.quote(bundle_dir)} && sha256sum -c --quiet <<'EOF'\n{lines}\nEOF\n"


def deploy(
    bundle: str | Path,
    to: str,
    *,
    root: str = "/var/lib/edgecsi",
    sources: list[str] | None = None,
    restart_cmd: str = "systemctl restart edgecsi-agent.service",
    health_cmd: str = "curl -fsS http://127.0.0.1:8765/health",
    health_timeout: float = 30.0,
    ssh_options: list[str] | None = None,
    python: str = "/usr/bin/python3",
) -> DeployResult:
    """Deploy ``bundle`` (verified locally first) and roll back if the agent is not healthy."""
    started = time.monotonic()
    verified = load_bundle(bundle)  # refuse to ship a bundle that does not verify here
    manifest = dict(verified.manifest)
    name = f"{manifest['bundle_version']}-{verified.manifest_sha256[:8]}"
    target = Target(to, root if Target(to, root).remote else str(Path(to).resolve()), list(ssh_options or []))
    root = target.root
    dest = f"{root}/bundles/{name}"
    q = shlex.quote

    target.run(f"mkdir -p {q(dest)} {q(root)}/state")
    target.copy_dir(Path(bundle), dest)
    check = target.run(_checksum_script(dest, manifest), check=False)
    if check.returncode != 0:
        target.run(f"rm -rf {q(dest)}", check=False)
        raise DeployError(f"{to}: hashes differ on the gateway after copying; nothing changed\n{check.stdout}{check.stderr}")

    unit = render_unit(root, sources or ["udp://0.0.0.0:5500"], python=python)
    target.run(f"cat > {q(root)}/edgecsi-agent.service <<'EOF'\n{unit}EOF\n"
               f"cat > {q(root)}/install.sh <<'EOF'\n{render_install(root, python=python)}EOF\n"
               f"chmod +x {q(root)}/install.sh")

    previous = target.run(f"readlink {q(root)}/current || true").stdout.strip() or None
    swap = f"ln -sfn {{target}} {q(root)}/current.tmp && mv -T {q(root)}/current.tmp {q(root)}/current"
    target.run(swap.format(target=q(f"bundles/{name}")))
    target.run(restart_cmd, check=False)
    health = _wait_healthy(target, health_cmd, health_timeout, int(manifest["bundle_version"]))
    if health is not None:
        return DeployResult(to, dest, previous, False, health, time.monotonic() - started)

    if previous:
        target.run(swap.format(target=q(previous)))
        target.run(restart_cmd, check=False)
    raise DeployError(f"{to}: agent not healthy within {health_timeout:.0f}s after deploying {name}; "
                      f"rolled back to {previous or 'nothing (first deploy)'}")


def _wait_healthy(target: Target, health_cmd: str, timeout: float, version: int) -> str | None:
    """Poll until the health command succeeds; when it answers the agent's /health JSON, the
    agent must also report the version just deployed (not the old process still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = target.run(health_cmd, check=False, timeout=max(5.0, timeout))
        if proc.returncode == 0:
            out = proc.stdout.strip()
            try:
                reported = json.loads(out).get("bundle_version")
            except (ValueError, AttributeError):
                reported = None
            if reported is None or int(reported) == version:
                return out
        time.sleep(0.5)
    return None


def manifest_summary(bundle: str | Path) -> dict:
    return json.loads((Path(bundle) / MANIFEST).read_text())
