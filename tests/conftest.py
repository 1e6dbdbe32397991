from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    return SHARED


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture
def broker(tmp_path):
    from services import Broker

    b = Broker(tmp_path).start()
    yield b
    b.stop()


NEXMON_4339 = "captures/nexmon/csikit_example_4339.pcap"


@pytest.fixture(scope="session")
def nexmon_capture(shared_dir):
    return shared_dir / NEXMON_4339


@pytest.fixture(scope="session")
def nexmon_bundle(tmp_path_factory, nexmon_capture):
    """A presence bundle (version 10) with a fitted pipeline, trained on the real 4339 capture
    (first half 'empty', second 'present'): shared by the agent and deployment tests."""
    from bundle_factory import make_capture_bundle
    from edgecsi.firmware_bridge import read

    batch = read(nexmon_capture).batch
    half = len(batch) // 2
    tmp = tmp_path_factory.mktemp("agent")
    return make_capture_bundle([batch.select(slice(0, half)), batch.select(slice(half, None))], [0, 1],
                               tmp / "bundle", window=16, hop=8, rate_hz=50.0, version=10)
