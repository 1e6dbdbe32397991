"""The generative acceptance experiments on real data sets, each against its plain baseline, and their table.

    .venv/bin/python benchmarks/generative.py --out docs/results/generative.md      (prints timings too)

Every experiment returns ``Row``s (method, data set, metric, baseline, result, seconds) that
``markdown_table`` renders. All numbers are on windows the method did not train on unless a row says
otherwise (clustering is transductive by nature: the site's windows are clustered, labels only score).

repair          ESP32-S2 D1T (clean) trains the activity classifier; the same windows, corrupted by
                F_theta, are all UNIR sees. Test: D1E corrupted with an independent theta. Metrics:
                relative reconstruction error (all entries, missing entries) and the classifier's accuracy
                on the repaired windows; baselines none / interpolation / Hampel / interpolation+gain
clustering      windows of one unlabelled day, k = number of activities present: k-means on raw windows vs
                k-means on the AAE codes (and the plain autoencoder, the no-critic ablation)
augmentation    few labelled windows per class from D1T; classifier with vs without decoded samples of a
                conditional AAE trained on the same few windows; test D1E
bidirectional   source run on D1T -> each later day (target unlabelled, the published temporal-drift
                setting), accuracy on the day minus one labelled-pool sequence, vs source-only
equivariance    strided conv vs conv + BlurPool1d twins (same weights) on real windows
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ESP32 = "esp32s2_temporal_har_geotecinit"
SMALL_CLASSIFIER = {"channels": (16, 32), "fc": 32}


@dataclass
class Row:
    method: str
    dataset: str
    metric: str
    baseline: str          # "name: value"
    result: float
    baseline_value: float | None = None
    seconds: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| method | data set | metric | baseline | result | train s (2 cores) | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        secs = "" if r.seconds is None else f"{r.seconds:.0f}"
        lines.append(f"| {r.method} | {r.dataset} | {r.metric} | {r.baseline} | {_fmt(r.result)} | {secs} | {r.note} |")
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def train_classifier(ws, split: str, out_dir: Path, *, epochs: int = 20, seed: int = 0):
    """A small activity CNN on the split's clean training windows (``edgecsi.training.train``)."""
    from edgecsi.training.train import train

    return train("activity", ws, split, "activity_cnn", epochs=epochs, seed=seed, out_dir=out_dir, progress=False,
                 hp=dict(SMALL_CLASSIFIER), threads=1, val_group="sequence")


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    from edgecsi.training.train import predict

    return float((predict(model, np.ascontiguousarray(x, np.float32)).argmax(1) == y).mean())


# -- repair ---------------------------------------------------------------------------------------------
@dataclass
class RepairOutcome:
    rows: list[Row]
    errors: dict[str, dict[str, float]]      # method -> {"all", "missing", "accuracy"}
    unir_seconds: float


def repair_experiment(work: Path, *, corruption=None, unir=None, classifier_epochs: int = 20,
                      seed: int = 0, ws=None) -> RepairOutcome:
    from edgecsi.training.datasets import load
    from edgecsi.training.datasets.splits import split_published
    from edgecsi.training.generative.classical import BASELINES
    from edgecsi.training.generative.corruption import CorruptionConfig, corrupt
    from edgecsi.training.generative.unir import UNIRConfig, relative_error, repair, train_unir

    corruption = corruption or CorruptionConfig()
    unir = unir or UNIRConfig()
    ws = ws if ws is not None else load(ESP32)
    (sp,) = split_published(ws)
    clf = train_classifier(ws, "published", Path(work) / "classifier", epochs=classifier_epochs, seed=seed).model
    x_tr, x_te, y_te = ws.x[sp.train], ws.x[sp.test], ws.y[sp.test]
    y_tr_meas, _ = corrupt(x_tr, corruption, seed=seed + 101)
    y_te_meas, keep = corrupt(x_te, corruption, seed=seed + 202)
    g0 = train_unir(y_tr_meas, corruption, UNIRConfig(**{**asdict(unir), "steps": 0}), seed=seed).model
    result = train_unir(y_tr_meas, corruption, unir, seed=seed)
    candidates = {"clean (no corruption)": x_te}
    candidates.update({name: fn(y_te_meas) for name, fn in BASELINES.items()})
    candidates["G before training (in-graph interpolation + gain)"] = repair(g0, y_te_meas)
    candidates["UNIR"] = repair(result.model, y_te_meas)
    errors = {name: {"all": relative_error(r, x_te), "missing": relative_error(r, x_te, ~keep),
                     "accuracy": accuracy(clf, r, y_te)} for name, r in candidates.items()}
    ds = f"ESP32-S2 D1E, corrupted ({_describe(corruption)})"
    rows = []
    for metric, key in (("relative error, all entries", "all"), ("relative error, missing entries", "missing"),
                        ("activity accuracy after repair", "accuracy")):
        better = max if key == "accuracy" else min
        base_name = better((n for n in BASELINES if n != "none"), key=lambda n: errors[n][key])
        rows.append(Row("UNIR repair", ds, metric,
                        f"{base_name}: {_fmt(errors[base_name][key])}; none: {_fmt(errors['none'][key])}",
                        errors["UNIR"][key], errors[base_name][key], result.seconds,
                        f"G untrained: {_fmt(errors['G before training (in-graph interpolation + gain)'][key])}"
                        + (f"; clean: {_fmt(errors['clean (no corruption)'][key])}" if key == "accuracy" else "")))
    return RepairOutcome(rows, errors, result.seconds)


def _describe(c) -> str:
    parts = [f"loss {c.packet_loss:.0%} bursts of {c.burst}", f"dead subcarriers {c.subcarrier_drop:.0%}",
             f"AGC {c.agc_db} dB"]
    if c.phase or c.phase_slope:
        parts.append(f"phase +-{c.phase} rad")
    return ", ".join(parts)


# -- AAE clustering ---------------------------------------------------------------------------------------
def clustering_experiment(days: tuple[str, ...] = ("D2", "D3", "D4"), *, aae=None, seed: int = 0,
                          ws=None) -> list[Row]:
    from edgecsi.training.datasets import load
    from edgecsi.training.generative.aae import AAEConfig, encode, train_aae
    from edgecsi.training.generative.clustering import cluster_scores, kmeans, raw_features

    ws = ws if ws is not None else load(ESP32)
    aae = aae or AAEConfig()
    rows = []
    for day in days:
        site = ws.select(day=day)
        k = len(np.unique(site.y))
        raw = cluster_scores(site.y, kmeans(raw_features(site.x), k, seed=seed))
        variants = {"AAE codes + k-means": aae, "autoencoder codes + k-means (no critic)":
                    AAEConfig(**{**asdict(aae), "adv_weight": 0.0, "clusters": 0})}
        for name, cfg in variants.items():
            res = train_aae(site.x, cfg, seed=seed)
            codes = encode(res.model, site.x)
            got = cluster_scores(site.y, kmeans(codes, k, seed=seed))
            for metric in ("nmi", "ari", "acc"):
                rows.append(Row(name, f"ESP32-S2 {day} ({len(site)} windows, k={k}), unlabelled", metric.upper(),
                                f"k-means on raw windows: {_fmt(raw[metric])}", got[metric], raw[metric], res.seconds))
    return rows


# -- AAE augmentation -------------------------------------------------------------------------------------
def augmentation_experiment(per_class: int = 5, synthetic_per_class: int = 20, *, aae=None, epochs: int = 40,
                            seed: int = 0, ws=None) -> list[Row]:
    """Few labelled D1T windows per class: classifier without / with conditional-AAE windows (test D1E).

    Two ways to make windows: decode prior samples (``mode="prior"``) or decode perturbed codes of the real
    labelled windows (``mode="neighbourhood"``). The note gives how often a classifier trained on ALL of D1T
    labels the synthetic windows as the class they were made for (chance 1/classes).
    """
    from edgecsi.training.adapt.target import choose_labelled
    from edgecsi.training.datasets import load
    from edgecsi.training.datasets.splits import split_published
    from edgecsi.training.generative.aae import AAEConfig, augment_with_samples, train_aae

    ws = ws if ws is not None else load(ESP32)
    (sp,) = split_published(ws)
    few = choose_labelled(ws.y, np.asarray(sp.train), per_class, np.random.default_rng(seed))
    x_few, y_few = ws.x[few], ws.y[few]
    aae = aae or AAEConfig(latent=2, n_classes=ws.n_classes)
    res = train_aae(x_few, aae, y=y_few, seed=seed)
    x_te, y_te = ws.x[sp.test], ws.y[sp.test]
    plain = fit_small(x_few, y_few, ws.n_classes, epochs=epochs, seed=seed)
    judge = fit_small(ws.x[sp.train], ws.y[sp.train], ws.n_classes, epochs=epochs, seed=seed)
    base_acc = accuracy(plain, x_te, y_te)
    rows = []
    for mode in ("prior", "neighbourhood"):
        x_aug, y_aug = augment_with_samples(res.model, x_few, y_few, synthetic_per_class, seed=seed, mode=mode)
        augmented = fit_small(x_aug, y_aug, ws.n_classes, epochs=epochs, seed=seed, stats_from=x_few)
        consistency = accuracy(judge, x_aug[len(x_few):], y_aug[len(x_few):])
        rows.append(Row(f"conditional AAE augmentation ({mode} samples)",
                        f"ESP32-S2 D1T {per_class}/class -> D1E", "activity accuracy",
                        f"no augmentation: {_fmt(base_acc)}", accuracy(augmented, x_te, y_te), base_acc, res.seconds,
                        f"+{synthetic_per_class}/class; a D1T classifier labels them as conditioned {consistency:.0%}"))
    return rows


def fit_small(x: np.ndarray, y: np.ndarray, n_classes: int, *, epochs: int = 40, seed: int = 0,
              stats_from: np.ndarray | None = None, batch: int = 32, lr: float = 1e-3):
    """A small activity CNN fitted on (x, y) for a fixed number of epochs (no validation: few windows)."""
    from edgecsi.training.models import build_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_model("activity_cnn", n_features=x.shape[2], n_time=x.shape[1], n_outputs=n_classes,
                      **SMALL_CLASSIFIER)
    ref = np.asarray(stats_from if stats_from is not None else x, np.float64).reshape(-1, x.shape[2])
    net.set_input_stats(ref.mean(0), np.maximum(ref.std(0), 1e-6))
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    net.train()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(order), batch):
            b = torch.from_numpy(order[i:i + batch])
            if len(b) < 2:
                continue
            loss = torch.nn.functional.cross_entropy(net(xt[b]), yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


# -- bidirectional adaptation -----------------------------------------------------------------------------
#: The control run: translators and critics frozen (identity), no target terms -- C_t trains on the source only.
CONTROL = {"lr_gen": 0.0, "lr_critic": 0.0, "consistency": 0.0, "pseudo": 0.0, "semantic": 0.0, "cycle": 0.0}


def bidirectional_experiment(work: Path, days: tuple[str, ...] = ("D2", "D3", "D4"), *, steps: int = 500,
                             classifier_epochs: int = 20, seed: int = 0, control: bool = True, ws=None) -> list[Row]:
    """Source D1T -> each day, 0 target labels; pool (excluded from the test) = the day's e01_tx_rx sequence.

    ``control``: the same number of steps with translators frozen at the identity and no target terms
    (C_t trained on source windows only) -- separates the method from simply training longer.
    """
    from edgecsi.training.adapt import TargetSpec, adapt
    from edgecsi.training.datasets import load
    from edgecsi.training.generative.bidirectional import register

    register()
    ws = ws if ws is not None else load(ESP32)
    base = Path(work) / "source_d1"
    if not (base / "model.safetensors").exists():
        train_classifier(ws, "published", base, epochs=classifier_epochs, seed=seed)
    rows = []
    for day in days:
        spec = TargetSpec(None, f"day={day}", f"sequence={day}/e01_tx_rx", 0, seed=seed)
        started = time.time()
        res = adapt(base, "bidirectional", spec, out_dir=Path(work) / f"bidir_{day}", options={"steps": steps},
                    threads=1, max_source=400, source=ws, target_set=ws, seed=seed)
        seconds = time.time() - started
        note = ""
        if control:
            ctl = adapt(base, "bidirectional", spec, out_dir=Path(work) / f"control_{day}",
                        options={"steps": steps, **CONTROL}, threads=1, max_source=400, source=ws, target_set=ws,
                        seed=seed)
            note = f"same steps on source only: {_fmt(ctl.accuracy)}"
        rows.append(Row("bidirectional generation (0 target labels)", f"ESP32-S2 D1 -> {day}", "activity accuracy",
                        f"source-only: {_fmt(res.source_only_accuracy)}", res.accuracy, res.source_only_accuracy,
                        seconds, note))
    return rows


# -- anti-aliasing ----------------------------------------------------------------------------------------
def equivariance_experiment(n_windows: int = 128, *, seed: int = 0, ws=None) -> list[Row]:
    from edgecsi.training.datasets import load
    from edgecsi.training.generative.equivariance import compare_shift_errors

    ws = ws if ws is not None else load(ESP32)
    x = ws.x[np.random.default_rng(seed).choice(len(ws), min(n_windows, len(ws)), replace=False)]
    out = compare_shift_errors(x, seed=seed)
    return [Row("conv + BlurPool1d (Kaiser, 7 taps)", "ESP32-S2 windows (shifts 1-3, stride 4)",
                f"shift {kind} error (relative)", f"strided conv: {_fmt(out['strided'][kind])}",
                out["blurpool"][kind], out["strided"][kind], None, "same conv weights")
            for kind in ("equivariance", "invariance")]


__all__ = ["Row", "markdown_table", "repair_experiment", "clustering_experiment", "augmentation_experiment",
           "bidirectional_experiment", "equivariance_experiment", "fit_small", "train_classifier", "accuracy"]
