"""Data-set loaders against the counts their READMEs state; WindowSet, splits, registry and CLI.

Each real data set is loaded once per session (fixtures below); tests that need ../shared skip
cleanly when it is absent.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgecsi.training import datasets as D
from edgecsi.training.datasets import splits as S
from edgecsi.training.datasets.base import WindowSet

ESP = "esp32s2_temporal_har_geotecinit"
INTEL = "intel5300_har_2env_5person"
WICAL = "esp32_wical_crowd_2rooms_3days"
CSU = "nexmon_csu_indoorloc_180rp"
IVANET = "ivanet_csi_ips_2020_21"


# ---------------------------------------------------------------- fixtures (one load per session)

@pytest.fixture(scope="session")
def root(shared_dir: Path) -> Path:
    path = shared_dir / "datasets"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def esp(root):
    return D.load(ESP, root=root)


@pytest.fixture(scope="session")
def intel(root):
    return D.load(INTEL, root=root)


@pytest.fixture(scope="session")
def wical_count(root):
    return D.load(WICAL, root=root, task="counting")


@pytest.fixture(scope="session")
def wical_loc(root):
    return D.load(WICAL, root=root, task="localization")


@pytest.fixture(scope="session")
def csu(root):
    return D.load(CSU, root=root)


@pytest.fixture(scope="session")
def ivanet(root):
    return D.load(IVANET, root=root)


def _toy() -> WindowSet:
    n = 12
    return WindowSet(
        name="toy", task="activity",
        x=np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 2, 3),
        y=np.array([0, 1, 2] * 4, dtype=np.int64), labels=["a", "b", "c"],
        domains={"day": np.repeat([1, 2, 3], 4), "person": np.array(list("pqrs") * 3)},
    )


def _check_common(ws: WindowSet, task: str) -> None:
    assert ws.x.dtype == np.float32 and ws.x.ndim == 3
    assert np.isfinite(ws.x).all()
    assert ws.task == task
    if ws.labels:
        assert ws.y.dtype == np.int64
        assert ws.y.min() >= 0 and ws.y.max() < len(ws.labels)
    assert D.DATASETS[ws.name].windows[task] == len(ws)
    assert set(D.DATASETS[ws.name].domains) == set(ws.domains)
    for col in ws.domains.values():
        assert len(col) == len(ws)
    json.dumps(ws.meta)                       # meta is plain data: it goes into model cards


# ---------------------------------------------------------------- WindowSet

def test_windowset_subset_where_select():
    ws = _toy()
    sub = ws.select(day=2)
    assert len(sub) == 4 and (sub.domains["day"] == 2).all()
    assert np.array_equal(sub.x, ws.x[4:8])
    assert len(ws.select(day=[1, 3], person="p")) == 2
    idx = ws.subset(np.array([5, 0]))
    assert idx.y.tolist() == [2, 0] and idx.domains["person"].tolist() == ["q", "p"]
    assert ws.class_counts() == {"a": 4, "b": 4, "c": 4}
    assert ws.domain_counts("day") == {1: 4, 2: 4, 3: 4}
    with pytest.raises(KeyError):
        ws.where(room="x")
    with pytest.raises(ValueError):
        ws.subset(np.ones(3, bool))


def test_windowset_validates_lengths():
    with pytest.raises(ValueError, match="domain column"):
        WindowSet("t", "activity", np.zeros((3, 1, 1), np.float32), np.zeros(3, np.int64), ["a"],
                  {"day": np.zeros(2)})
    with pytest.raises(ValueError, match=r"\[window, time, feature\]"):
        WindowSet("t", "activity", np.zeros((3, 1), np.float32), np.zeros(3, np.int64), ["a"], {})


# ---------------------------------------------------------------- splits (synthetic)

def test_leave_one_out_and_group_kfold_are_disjoint():
    ws = _toy()
    loo = S.leave_one_out(ws, "day")
    assert [s.name for s in loo] == ["day=1", "day=2", "day=3"]
    for s in loo:
        s.check_disjoint()
        assert len(s.train) + len(s.test) == len(ws)
    folds = S.group_kfold(ws, "person", 2, seed=1)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(ws)))
    for f in folds:
        assert not set(ws.domains["person"][f.train]) & set(ws.domains["person"][f.test])
    assert len(S.person_disjoint(ws)) == 4


def test_stratified_kfold_and_by_values():
    ws = _toy()
    folds = S.stratified_kfold(ws, 4, seed=0)
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(ws)))
    for f in folds:
        assert sorted(ws.y[f.test].tolist()) == [0, 1, 2]
    s = S.by_values(ws, "day", [1, 2], 3)
    assert len(s.train) == 8 and len(s.test) == 4 and len(s.val) == 0


# ---------------------------------------------------------------- registry and CLI

def test_registry_unknown_and_root(monkeypatch, tmp_path):
    with pytest.raises(D.DatasetNotFound, match="unknown data set"):
        D.load("nope")
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path))
    assert D.dataset_root() == tmp_path
    with pytest.raises(D.DatasetNotFound, match="does not exist"):
        D.load(ESP)
    monkeypatch.delenv(D.ENV_VAR)
    assert D.dataset_root() == Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def test_cli_datasets_json_and_table(tmp_path):
    from typer.testing import CliRunner

    from edgecsi.cli import app

    result = CliRunner().invoke(app, ["datasets", "--json", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == list(D.DATASETS)
    assert all(not r["present"] and r["size_bytes"] == 0 for r in rows)
    (tmp_path / CSU).mkdir()
    (tmp_path / CSU / "README.txt").write_bytes(b"x" * 10)
    result = CliRunner().invoke(app, ["datasets", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{CSU}  [10 B]" in result.output and "ABSENT" in result.output
    assert "license: BSD-3-Clause" in result.output


def test_list_datasets_on_shared(root):
    rows = {r["id"]: r for r in D.list_datasets(root)}
    assert all(r["present"] for r in rows.values())
    assert rows[ESP]["size_bytes"] > 20_000_000
    assert rows[WICAL]["tasks"] == ["counting", "localization"]
    assert D.DATASETS[IVANET].size_on_disk(root) == rows[IVANET]["size_bytes"]


# ---------------------------------------------------------------- ESP32-S2 temporal HAR

def test_esp32s2_windowed_counts(esp):
    _check_common(esp, "activity")
    assert esp.x.shape[1:] == (50, 56)
    assert esp.domain_counts("day") == {"D1": 505, "D2": 104, "D3": 102, "D4": 98}
    assert esp.select(day="D1").class_counts() == {
        "SEATED_RX": 80, "STANDING_UP_RX": 33, "WALKING_TX": 71, "TURN_TX": 26, "SITTING_DOWN_TX": 41,
        "SEATED_TX": 83, "STANDING_UP_TX": 32, "WALKING_RX": 79, "TURN_RX": 20, "SITTING_DOWN_RX": 40}
    assert len(np.unique(esp.domains["sequence"])) == 20 + 3 * 4
    assert (esp.domains["day"] == esp.domains["domain"]).all()


def test_esp32s2_window_matches_file(esp, root):
    raw = np.load(root / ESP / "03_WINDOWED" / "D3" / "e02_tx_rx-x.npy")
    got = esp.select(sequence="D3/e02_tx_rx").x
    np.testing.assert_allclose(got, raw.transpose(0, 2, 1).astype(np.float32))


def test_esp32s2_published_split_matches_published_supports(esp, root):
    (split,) = S.split_published(esp)
    assert (len(split.train), len(split.test)) == (404, 101)
    assert set(esp.domains["run"][split.train]) == set(range(1, 9))
    reports = {"D1T->D1E": "d1", "D2": "d2", "D3": "d3", "D4": "d4"}
    for name, idx in split.tests().items():
        report = json.loads((root / ESP / "published_results" / f"{reports[name]}_report.json").read_text())
        support = {k: v["support"] for k, v in report["classification_report"].items() if k in esp.labels}
        assert esp.subset(idx).class_counts() == support, name


def test_esp32s2_labelled_windowing(root):
    # window = stride = 1 turns every labelled packet into a window: the README's packet totals.
    per_packet = D.load(ESP, root=root, source="labelled", window=1, stride=1)
    assert per_packet.domain_counts("day") == {"D1": 18295, "D2": 3691, "D3": 3685, "D4": 3582}
    ws = D.load(ESP, root=root, source="labelled", days=["D2"])
    amp = np.load(root / ESP / "02_LABELLED" / "D2" / "e01_rx_tx-x.npy")
    first = ws.select(sequence="D2/e01_rx_tx")
    np.testing.assert_allclose(first.x[0], amp[:, :50].T.astype(np.float32))
    np.testing.assert_allclose(first.x[1], amp[:, 25:75].T.astype(np.float32))
    labels = np.load(root / ESP / "02_LABELLED" / "D2" / "e01_rx_tx-y.npy", allow_pickle=True).ravel()
    assert first.labels[first.y[0]] == labels[0]
    assert len(ws) == 112


# ---------------------------------------------------------------- Intel 5300 two-room HAR

def test_intel5300_counts(intel):
    _check_common(intel, "activity")
    assert intel.x.shape == (2101, 200, 90)
    assert intel.domain_counts("room") == {"bedroom": 1050, "meetingroom": 1051}
    for room in ("bedroom", "meetingroom"):
        counts = intel.select(room=room).class_counts()
        assert counts["fall down"] == 50
        assert sum(counts.values()) == (1050 if room == "bedroom" else 1051)
    assert intel.select(room="meetingroom").class_counts()["pick up"] == 101
    fall = intel.labels.index("fall down")
    bedroom_fall = Counter(intel.domains["person"][intel.where(room="bedroom") & (intel.y == fall)].tolist())
    assert bedroom_fall == {"abid": 10, "hhj": 10, "zyy": 10, "zxq": 20}       # README quirk: no zly
    assert sorted(np.unique(intel.domains["person"])) == ["abid", "hhj", "zly", "zxq", "zyy"]


def test_intel5300_amplitude_and_iq_agree_with_file(intel, root):
    with np.load(root / INTEL / "har_2env.npz") as z:
        i = 1500
        c = z["csi_int8"][i].astype(np.float64)
        csi = (c[..., 0] + 1j * c[..., 1]) * z["scale"][i][None, None, :]        # (rx, sub, packet)
    np.testing.assert_allclose(intel.x[i], np.abs(csi).transpose(2, 0, 1).reshape(200, 90), rtol=1e-5)
    iq = D.load(INTEL, root=root, representation="iq", rooms=["meetingroom"])
    assert len(iq) == 1051 and iq.x.shape[2] == 180
    amp = np.hypot(iq.x[:50, :, :90], iq.x[:50, :, 90:])
    np.testing.assert_allclose(amp, intel.select(room="meetingroom").x[:50], rtol=1e-5, atol=1e-6)


def test_intel5300_conj_is_the_edge_pipelines_inter_antenna_feature(intel, root):
    with np.load(root / INTEL / "har_2env.npz") as z:
        i = 1500                                                                   # a meeting-room window
        c = z["csi_int8"][i].astype(np.float64)
        csi = (c[..., 0] + 1j * c[..., 1]) * z["scale"][i][None, None, :]        # (rx, sub, packet)
    both = D.load(INTEL, root=root, representation="amplitude+conj", rooms=["meetingroom"])
    assert both.x.shape[1:] == (200, 210)
    j = np.flatnonzero(intel.domains["room"] == "meetingroom").tolist().index(i)
    np.testing.assert_array_equal(both.x[:, :, :90], intel.select(room="meetingroom").x)
    # [part, pair, subcarrier], subcarrier fastest: the layout of the edge pipeline's "conj" feature
    prod = csi[:-1] * np.conj(csi[1:])                                             # (pair, sub, packet)
    want = np.concatenate([prod.real, prod.imag]).transpose(2, 0, 1).reshape(200, 120)
    np.testing.assert_allclose(both.x[j, :, 90:], want, rtol=1e-4, atol=1e-3 * np.abs(want).max())
    conj = D.load(INTEL, root=root, representation="conj", rooms=["meetingroom"])
    np.testing.assert_array_equal(conj.x, both.x[:, :, 90:])
    with pytest.raises(ValueError, match="representation must be one of"):
        D.load(INTEL, root=root, representation="phase")


def test_intel5300_cross_room_split(intel):
    a, b = S.split_published(intel)
    assert (len(a.train), len(a.test)) == (1050, 1051)
    assert (len(b.train), len(b.test)) == (1051, 1050)


# ---------------------------------------------------------------- Wi-CaL

def test_wical_counting(wical_count):
    _check_common(wical_count, "counting")
    ws = wical_count
    assert ws.labels == [] and ws.y.dtype == np.float32 and ws.x.shape[1:] == (1, 420)
    assert len(ws.select(room="small")) == 3582 and len(ws.select(room="medium")) == 6567
    small = ws.select(room="small")
    assert Counter(small.y.astype(int).tolist()) == {k: 597 for k in range(6)}
    assert Counter(ws.select(room="medium").y.astype(int).tolist()) == {k: 597 for k in range(11)}
    assert small.domain_counts("day") == {1: 1194, 2: 1194, 3: 1194}
    assert set(ws.domain_counts("file").values()) == {199}
    assert len(ws.meta["feature_names"]) == 420


def test_wical_localization_and_loso(wical_loc, wical_count):
    ws = wical_loc
    _check_common(ws, "localization")
    assert ws.x.shape[1:] == (1, 356)
    assert ws.select(room="small").class_counts() == {n: 597 for n in ws.labels}
    assert ws.select(room="medium").class_counts() == {n: 1197 for n in ws.labels}
    assert len(np.unique(ws.domains["file"])) + len(np.unique(wical_count.domains["file"])) == 81
    splits = S.split_published(ws)
    assert [s.name for s in splits] == [f"{r}:day{d}" for r in ("medium", "small") for d in (1, 2, 3)]
    assert [len(s.test) for s in splits] == [1995] * 3 + [995] * 3


def test_wical_counting_as_classes(root):
    ws = D.load(WICAL, root=root, task="counting", rooms=["small"], counting_target="classes")
    assert ws.labels == ["0", "1", "2", "3", "4", "5"] and ws.class_counts() == {str(k): 597 for k in range(6)}


# ---------------------------------------------------------------- Nexmon CSU

def test_csu_counts(csu):
    _check_common(csu, "localization")
    assert csu.x.shape[1:] == (1, 56)
    assert csu.domain_counts("split") == {"ref": 108_000, "test": 16_568}
    ref, test = csu.select(split="ref"), csu.select(split="test")
    assert ref.domain_counts("path") == {1: 31_200, 2: 18_000, 3: 15_600, 4: 18_000, 5: 25_200}
    assert {p: len(np.unique(ref.domains["point"][ref.domains["path"] == p])) for p in range(1, 6)} == \
        {1: 52, 2: 30, 3: 26, 4: 30, 5: 42}
    assert set(ref.domain_counts("capture").values()) == {600}
    assert len(np.unique(test.domains["capture"])) == 166
    assert csu.meta["path_inferred"] == {"test/242_1": 2, "test/A233_3": 5}
    assert csu.labels[180:] == ["A233_3"]
    assert [csu.labels[i] for i in test.y[:1]] == [test.domains["point"][0]]


def test_csu_labels_are_reference_names(csu, root):
    with np.load(root / CSU / "csu_ref_first600.npz") as z:
        assert csu.labels[:180] == [str(n) for n in z["loc_names"]]
        assert np.array_equal(csu.select(split="ref").y, z["loc_idx"])


def test_csu_coords_from_xlsx_match_npz(csu, root):
    for split, name in (("ref", "csu_ref_first600.npz"), ("test", "csu_test.npz")):
        with np.load(root / CSU / name) as z:
            want = np.stack([z["x"], z["y"]], axis=1)
        np.testing.assert_allclose(csu.select(split=split).coords, want, atol=1e-5)
    missing = np.unique(csu.domains["point"][np.isnan(csu.coords[:, 0])])
    assert missing.tolist() == ["242_1", "A233_3"]
    located = D.load(CSU, root=root, splits=["test"], require_coords=True)
    assert len(located) == 16_568 - 200 and np.isfinite(located.coords).all()


def test_csu_subcarrier_order_and_iq(root):
    ws = D.load(CSU, root=root, splits=["test"], paths=[3], representation="iq")
    assert len(ws) == 1999 and ws.x.shape[2] == 112
    with np.load(root / CSU / "csu_test.npz") as z:
        first = np.flatnonzero(z["path"] == 3)[0]
        pkt = z["csi_iq_int16"][first].astype(np.float32)
    assert ws.x[0, 0, 0] == pkt[36, 0] and ws.x[0, 0, 27] == pkt[63, 0]       # -28, -1
    assert ws.x[0, 0, 28] == pkt[1, 0] and ws.x[0, 0, 56 + 55] == pkt[28, 1]  # +1, Q of +28
    (split,) = S.split_published(D.load(CSU, root=root, paths=[3]))
    assert (len(split.train), len(split.test)) == (15_600, 1999)


# ---------------------------------------------------------------- iVANET

def test_ivanet_counts(ivanet):
    _check_common(ivanet, "localization")
    assert ivanet.x.shape == (102_720, 1, 180)
    assert ivanet.class_counts() == {f"l{i:02d}": 12_840 for i in range(1, 9)}
    days = ivanet.domain_counts("day")
    assert sorted(days) == list(range(2, 25)) and days[10] == 7680 and days[12] == 960
    assert len(np.unique(ivanet.domains["session"])) == 107
    assert set(ivanet.domain_counts("file").values()) == {120}
    assert "" not in set(ivanet.domains["people"].tolist())
    (a,) = S.split_published(ivanet)
    assert (len(a.train), len(a.val), len(a.test)) == (73_920, 7680, 14_400)


def test_ivanet_scaled_csi_by_hand():
    from edgecsi.training.datasets.ivanet import scaled_csi

    csi = np.full((1, 2, 3, 30), 3 + 4j, np.complex64)            # |csi|^2 = 25 everywhere
    rssi, agc, noise = np.array([[40, 30, 0]], np.uint8), np.array([30], np.uint8), np.array([-127], np.int8)
    total_rss = 10 * np.log10(10 ** 4.0 + 10 ** 3.0) - 44 - 30
    scale = 10 ** (total_rss / 10) / (180 * 25 / 30)
    total_noise = 10 ** (-92 / 10) + scale * 6
    want = (3 + 4j) * np.sqrt(scale / total_noise) * np.sqrt(2)
    np.testing.assert_allclose(scaled_csi(csi, rssi, agc, noise), np.full((1, 2, 3, 30), want), rtol=1e-5)


def test_ivanet_options(root, ivanet):
    ws = D.load(IVANET, root=root, skip_first=4, days=[19, 20], representation="raw_amplitude")
    assert len(ws) == (2880 + 4800) // 120 * 116
    with np.load(root / IVANET / "ivanet_days02-24.npz") as z:
        row = np.flatnonzero((z["day"] == 19) & (z["pkt"] == 4))[0]
        raw = z["csi_raw"][row].astype(np.float32)
    np.testing.assert_allclose(ws.x[0, 0], np.hypot(raw[..., 0], raw[..., 1]).ravel())
