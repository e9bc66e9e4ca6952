"""Synthetic phishing records from summary statistics (a latent-class mixture per label).

The committed sample in ``data/01_raw`` is made here, never copied from the real data set.
The model, per label: a mixture of ``K`` latent classes in which the 30 features are
independent categorical variables, plus a histogram of how often a record repeats. The
mixture keeps the dependence between the features and the label *and* between the features
(the classes carry the joint structure); the multiplicities reproduce the many exact
duplicate rows of the real data.

``fit_profile`` estimates the parameters by EM and returns them as a JSON-serialisable
"profile" holding only aggregated statistics (row counts, mixing weights, per-class value
probabilities, multiplicity histograms); ``sample_records`` draws rows from a profile alone.
Both are seeded: the same profile and seed give the same frame, and only uniform draws are
used (inverse CDF), so the output does not depend on the sampling algorithms of a numpy
release.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from network_security.datasets.safe_csv import neutralise_formulas
from network_security.schema import (
    Schema,
    allowed_values,
    feature_columns,
    record_columns,
    target_column,
    target_values,
)
from network_security.validator import check_feature_columns, require_columns

logger = logging.getLogger(__name__)

PROFILE_FORMAT = "network_security.synthetic/latent-class-mixture/v1"
Profile = dict[str, Any]

# How the committed files in data/01_raw were made (scripts/generate_synthetic.py sample).
SAMPLE_ROWS = 3000
SAMPLE_SEED = 2024
BATCH_ROWS = 500
BATCH_SEED = 2025


def _shown(value: Any) -> str:
    """A cell value as a user would write it (``2``, ``'abc'``), not as ``np.int64(2)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def encode_features(df: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Map each feature value to its index in the schema's allowed values.

    The records are checked by the project's one validator (``network_security.validator``):
    an ``InputValidationError`` (a ``ValueError``) names the column, the row (1-based) and the
    value of a missing column, a missing cell or a value outside the column's allowed set.
    """
    columns = feature_columns(schema)
    require_columns(df.columns, columns, "records", "feature columns of the schema")
    matrix = check_feature_columns({name: df[name] for name in columns}, schema, "records")
    codes = np.empty_like(matrix)
    for j, values in enumerate(allowed_values(schema).values()):
        codes[:, j] = np.argmax(matrix[:, j, None] == np.asarray(values), axis=1)
    return codes


def _one_hot(codes: np.ndarray, n_levels: list[int]) -> np.ndarray:
    """One-hot encode integer codes feature by feature into one ``n x sum(n_levels)`` matrix."""
    offsets = np.concatenate([[0], np.cumsum(n_levels)[:-1]])
    out = np.zeros((codes.shape[0], int(sum(n_levels))))
    out[np.arange(codes.shape[0])[:, None], codes + offsets] = 1.0
    return out


def _normalise_blocks(counts: np.ndarray, n_levels: list[int]) -> np.ndarray:
    """Normalise each feature's block of columns so every row of a block sums to one."""
    out = np.empty_like(counts)
    start = 0
    for size in n_levels:
        block = counts[:, start : start + size]
        out[:, start : start + size] = block / block.sum(axis=1, keepdims=True)
        start += size
    return out


def _log_softmax_rows(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log-normaliser and normalised probabilities of a logit matrix."""
    peak = logits.max(axis=1, keepdims=True)
    shifted = np.exp(logits - peak)
    total = shifted.sum(axis=1, keepdims=True)
    return (peak + np.log(total)).ravel(), shifted / total


def _fit_mixture(
    onehot: np.ndarray,
    weights: np.ndarray,
    n_levels: list[int],
    n_components: int,
    rng: np.random.Generator,
    *,
    n_iter: int,
    tol: float,
    pseudo_count: float,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """EM for a latent-class model on weighted one-hot rows.

    Returns the mixing weights, the per-class value probabilities ``theta``, the weighted
    log-likelihood and the responsibilities of each row.
    """
    n_rows = onehot.shape[0]
    resp = rng.random((n_rows, n_components)) + 0.5
    resp /= resp.sum(axis=1, keepdims=True)
    loglik, iterations = -np.inf, 0
    while iterations < n_iter:
        iterations += 1
        weighted = resp * weights[:, None]
        mixing = weighted.sum(axis=0) + 1e-3
        mixing /= mixing.sum()
        theta = _normalise_blocks(weighted.T @ onehot + pseudo_count, n_levels)
        logits = onehot @ np.log(theta).T + np.log(mixing)
        row_loglik, resp = _log_softmax_rows(logits)
        new_loglik = float(weights @ row_loglik)
        if new_loglik - loglik < tol * weights.sum():
            loglik = new_loglik
            break
        loglik = new_loglik
    logger.debug("EM stopped after %d iterations, log-likelihood %.2f", iterations, loglik)
    return mixing, theta, loglik, resp


def fit_profile(
    df: pd.DataFrame,
    schema: Schema,
    *,
    n_components: int = 32,
    seed: int = 0,
    n_init: int = 3,
    n_iter: int = 300,
    tol: float = 1e-7,
    pseudo_count: float = 0.05,
    min_class_vectors: int = 10,
    decimals: int = 6,
) -> Profile:
    """Fit the per-label latent-class mixture to labelled records and return the profile.

    ``df`` needs the schema's feature columns and target; values outside the schema raise
    ``ValueError``. Per label, the mixture is fitted to the rows (EM on the distinct feature
    vectors weighted by how often each occurs), and how often a vector repeats is kept as a
    histogram of multiplicities, so the sampler can reproduce the exact duplicate rows of the
    source. The profile holds aggregated statistics only: row counts per label, multiplicity
    histograms, and per latent class its mixing weight, expected number of distinct vectors
    and value probabilities (rounded to ``decimals``).
    No latent class summarises fewer than ``min_class_vectors`` distinct vectors (in
    expectation): the number of classes is lowered until that holds, so no class can stand
    for a single source row.
    """
    target = target_column(schema)
    if target not in df.columns:
        raise ValueError(f"Column {target!r} (the label) is missing; fit needs labelled records")
    labels = pd.to_numeric(df[target], errors="coerce")
    bad = ~labels.isin(target_values(schema))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"Column {target!r}, row {row}: value {_shown(df[target].iloc[row])} is not one of "
            f"{target_values(schema)}"
        )
    codes = encode_features(df, schema)
    n_levels = [len(v) for v in allowed_values(schema).values()]
    rng = np.random.default_rng(seed)
    classes = []
    for label in target_values(schema):
        mask = (labels == label).to_numpy()
        if not mask.any():
            raise ValueError(f"No rows with {target} = {label}; fit needs both labels")
        unique, multiplicity = np.unique(codes[mask], axis=0, return_counts=True)
        onehot = _one_hot(unique, n_levels)
        k = max(1, min(n_components, len(unique) // min_class_vectors))
        while True:
            best = None
            for _ in range(n_init):
                fitted = _fit_mixture(
                    onehot,
                    multiplicity.astype(float),
                    n_levels,
                    k,
                    rng,
                    n_iter=n_iter,
                    tol=tol,
                    pseudo_count=pseudo_count,
                )
                if best is None or fitted[2] > best[2]:
                    best = fitted
            mixing, theta, loglik, resp = best
            vectors = resp.sum(axis=0)
            smallest = float(vectors.min())
            if k == 1 or smallest >= min_class_vectors:
                break
            logger.info(
                "Label %s: a latent class of %d summarises %.1f vectors (< %d); refitting with %d",
                label,
                k,
                smallest,
                min_class_vectors,
                k - 1,
            )
            k -= 1
        components = []
        for c in np.argsort(-mixing, kind="stable"):
            probabilities, start = {}, 0
            for name, size in zip(feature_columns(schema), n_levels, strict=True):
                probabilities[name] = [
                    round(float(p), decimals) for p in theta[c, start : start + size]
                ]
                start += size
            components.append(
                {
                    "weight": round(float(mixing[c]), decimals),
                    "expected_vectors": round(float(vectors[c]), 1),
                    "probabilities": probabilities,
                }
            )
        values, counts = np.unique(multiplicity, return_counts=True)
        logger.info(
            "Label %s: %d rows, %d distinct vectors, %d latent classes, "
            "log-likelihood per row %.3f",
            label,
            int(mask.sum()),
            len(unique),
            k,
            loglik / mask.sum(),
        )
        classes.append(
            {
                "label": int(label),
                "n_rows": int(mask.sum()),
                "n_distinct": len(unique),
                "log_likelihood_per_row": round(loglik / mask.sum(), 4),
                "multiplicity": {str(int(v)): int(n) for v, n in zip(values, counts, strict=True)},
                "components": components,
            }
        )
    full = pd.DataFrame(codes).assign(_label=labels.to_numpy())
    return {
        "format": PROFILE_FORMAT,
        "features": allowed_values(schema),
        "target": {"name": target, "values": target_values(schema)},
        "source": {
            "n_rows": len(df),
            "duplicate_row_share": round(float(full.duplicated().mean()), 4),
        },
        "fit": {
            "n_components": n_components,
            "seed": seed,
            "n_init": n_init,
            "pseudo_count": pseudo_count,
            "min_class_vectors": min_class_vectors,
        },
        "classes": classes,
    }


def check_profile(profile: Profile, schema: Schema) -> None:
    """Raise ``ValueError`` if the profile does not match the schema or is malformed."""
    if profile.get("format") != PROFILE_FORMAT:
        raise ValueError(
            f"Profile format {profile.get('format')!r} is not {PROFILE_FORMAT!r}; "
            "rebuild it with `python scripts/generate_synthetic.py fit`"
        )
    if profile["features"] != allowed_values(schema):
        raise ValueError(
            "The profile's features or allowed values differ from the schema in "
            "conf/base/parameters.yml; rebuild it with `python scripts/generate_synthetic.py fit`"
        )
    labels = [c["label"] for c in profile["classes"]]
    if sorted(labels) != sorted(target_values(schema)):
        raise ValueError(
            f"Profile labels {labels} differ from the schema's {target_values(schema)}"
        )
    for cls in profile["classes"]:
        for i, comp in enumerate(cls["components"]):
            for name, probs in comp["probabilities"].items():
                if len(probs) != len(profile["features"][name]) or min(probs) < 0:
                    raise ValueError(
                        f"Profile label {cls['label']}, class {i}, column {name!r}: "
                        f"probabilities {probs} do not fit the allowed values"
                    )


def _draw(cumulative: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: index of the first cumulative probability above each uniform."""
    return (uniforms[:, None] >= cumulative[:, :-1]).sum(axis=1)


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Normalised cumulative sums along the last axis."""
    weights = np.asarray(weights, dtype=float)
    return np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)


def _split_rows(n_rows: int, sizes: list[int]) -> list[int]:
    """Split ``n_rows`` in proportion to ``sizes`` (largest remainder, ties to the first)."""
    exact = np.asarray(sizes, dtype=float) / sum(sizes) * n_rows
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_rows - counts.sum()]] += 1
    return [int(c) for c in counts]


def _sample_label(
    cls: dict[str, Any], features: list[str], n_rows: int, rng: np.random.Generator
) -> np.ndarray:
    """Value indices of ``n_rows`` rows of one label: distinct records times multiplicities."""
    uniforms = rng.random((n_rows, 2 + len(features)))
    comps = cls["components"]
    cum_mix = _cumulative([c["weight"] for c in comps])
    comp_idx = _draw(np.broadcast_to(cum_mix, (n_rows, len(comps))), uniforms[:, 0])
    hist = cls["multiplicity"]
    sizes = np.array([int(m) for m in hist], dtype=np.int64)
    cum_hist = _cumulative([hist[m] for m in hist])
    repeats = sizes[_draw(np.broadcast_to(cum_hist, (n_rows, len(sizes))), uniforms[:, 1])]
    codes = np.empty((n_rows, len(features)), dtype=np.int64)
    for j, name in enumerate(features):
        cum = _cumulative([c["probabilities"][name] for c in comps])
        codes[:, j] = _draw(cum[comp_idx], uniforms[:, 2 + j])
    n_records = int(np.searchsorted(np.cumsum(repeats), n_rows)) + 1 if n_rows else 0
    return codes[np.repeat(np.arange(n_records), repeats[:n_records])[:n_rows]]


def sample_records(
    profile: Profile, schema: Schema, n_rows: int, seed: int, *, with_target: bool = True
) -> pd.DataFrame:
    """Draw ``n_rows`` synthetic records from a profile: schema order, int64 columns.

    The rows are split between the labels in the source's proportions; per label, distinct
    records are drawn (a latent class, then each feature given the class), each is repeated
    by a multiplicity drawn from the label's histogram, and the rows are then shuffled. The
    same profile, ``n_rows`` and ``seed`` give the same frame. With ``with_target=False`` the
    frame holds the features only.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    check_profile(profile, schema)
    features = feature_columns(schema)
    by_label = {c["label"]: c for c in profile["classes"]}
    labels = target_values(schema)
    rng = np.random.default_rng(seed)
    counts = _split_rows(n_rows, [by_label[v]["n_rows"] for v in labels])
    codes = np.concatenate(
        [_sample_label(by_label[v], features, n, rng) for v, n in zip(labels, counts, strict=True)]
    )
    label_values = np.repeat(np.asarray(labels, dtype=np.int64), counts)
    order = np.argsort(rng.random(n_rows), kind="stable")
    frame = pd.DataFrame(
        {
            name: np.asarray(profile["features"][name], dtype=np.int64)[codes[order, j]]
            for j, name in enumerate(features)
        }
    )
    if with_target:
        frame[target_column(schema)] = label_values[order]
        frame = frame[record_columns(schema)]
    return frame


def frame_to_csv(frame: pd.DataFrame) -> str:
    """The CSV text written for a synthetic frame (no index, ``\\n`` line ends; text cells
    neutralised for spreadsheets like every CSV the project writes)."""
    return neutralise_formulas(frame).to_csv(index=False, lineterminator="\n")


def make_batch(profile: Profile, schema: Schema, n_rows: int, seed: int) -> pd.DataFrame:
    """An unlabelled batch to score: a leading made-up ``url`` column, then the features."""
    frame = sample_records(profile, schema, n_rows, seed, with_target=False)
    urls = [f"https://example-{i:04d}.test/" for i in range(1, n_rows + 1)]
    frame.insert(0, "url", urls)
    return frame
