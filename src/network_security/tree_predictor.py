"""A fast evaluator of a fitted model's P(phishing): the tree ensembles without scikit-learn's
per-call overheads, the transforms before them in numpy.

``compile_estimator`` reads a fitted scikit-learn model of the shapes training builds
(``network_security.pipelines.training.search``)::

    [Pipeline: IndicatorCountFeatures -> [ColumnTransformer / OneHotEncoder / StandardScaler]]
        -> RandomForestClassifier | ExtraTreesClassifier | HistGradientBoostingClassifier

or a soft ``VotingClassifier`` of such models, and returns a ``CompiledPredictor`` that maps a
numeric matrix of the feature columns to P(phishing), equal to the model's ``predict_proba``:

- the transforms run vectorised in numpy, with scikit-learn's arithmetic (same dtypes, same
  order of operations), so their outputs are the same numbers;
- the trees run in two numba kernels (``network_security.tree_kernels``) that add the leaf
  values in scikit-learn's order, so the probabilities are the same numbers too: one row in
  well under a millisecond (``predict_proba`` spends milliseconds on input validation and
  thread start-up), 1,000 rows about twice as fast as scikit-learn's own traversals, large
  batches over row blocks in parallel threads (the kernels release the GIL).

``phishing_probability_of_variants`` scores variants of each row (the single-indicator changes
that reasons try) with each tree walked once per row and once more per group of variants that
leaves the row's path (``tree_kernels.variant_sums``): the same numbers as scoring every variant
as a row, in a fraction of the walks. Anything else (another estimator or transform) raises
``UnsupportedModel``.

The compiler reads private parts of scikit-learn's estimators (gradient boosting's
``_predictors``, ``_bin_mapper``, ``_baseline_prediction``, ``_preprocessor``, ``_loss``), which
any release may change, so no scikit-learn version is trusted: ``verified_predictor`` (what
``PhishingModel`` uses) scores ``reference_rows`` both ways when a model is first scored and
returns the compiled predictor only if it equals ``predict_proba`` within
``AGREEMENT_TOLERANCE``; any difference or error means ``predict_proba`` (correct, slower),
with one warning.

Why hand-written kernels and not a library (measured on the production soft vote, 200
categorical boosting trees + 100 extra trees, the same numpy transforms before each; medians
of interleaved rounds on 2 shared, busy cores):

- treelite 4.8.1 (GTIL): 1,000 rows 4-7x slower (86-106 ms against 22 ms here; 222-329 ms
  against 48 ms in a busier run), one row about the same (0.39-0.90 ms against 0.61-0.62 ms);
  equal on the data set's rows, but up to 0.48 apart on a category the boosting never saw,
  which scikit-learn sends down the missing-value branch. It reads the same private attributes.
- onnxruntime 1.31.1 + skl2onnx 1.20.0: skl2onnx cannot convert the categorical
  ``HistGradientBoostingClassifier`` (ValueError creating its ``TreeEnsembleClassifier``), and
  its tree ensembles compute in float32 (extra trees alone: 4.8e-7 apart; onnxruntime refuses
  the double-precision output), far from the 1e-9 required.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from network_security.features import (
    CATEGORY_OFFSET,
    INDICATOR_COUNTS,
    CategoryCodes,
    IndicatorCountFeatures,
)

logger = logging.getLogger(__name__)

PARALLEL_MIN_ROWS = 2048
"""Batches of at least twice this many rows are split over worker threads."""
MEMBERS_PARALLEL_MIN_ROWS = 256
"""Smaller batches of at least this many rows run the members of a vote in parallel threads."""
AGREEMENT_TOLERANCE = 1e-9
"""The largest difference from ``predict_proba`` on the reference rows for the compiled path to
be used (``verified_predictor``)."""
REFERENCE_ROWS = 512
"""Rows of each seeded sample of ``reference_rows`` (the production vote's ``predict_proba`` of
the 1,027 rows takes 0.14-0.2 s here; twice the rows, twice that)."""
VARIANT_GROUPS = 2
"""Groups of changed values per cell that ``tree_kernels.variant_groups`` makes room for first
(an indicator's two other values; a count one up and one down)."""
MAX_VARIANTS = 63
"""Variants per row of ``phishing_probability_of_variants`` (one bit each, and one for the row,
in a 64-bit mask)."""
INDICATOR_VALUES = tuple(INDICATOR_COUNTS.values())
"""The values an indicator takes (-1, 0, 1)."""


class UnsupportedModel(Exception):
    """The model has a part the compiled predictor does not evaluate (the message says which)."""


Transform = Callable[[np.ndarray], np.ndarray]


def _thread_count() -> int:
    """Threads for large batches: ``OMP_NUM_THREADS`` when set (the project's thread budget),
    else the CPU count."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return os.cpu_count() or 1


_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(_thread_count(), 1), thread_name_prefix="trees"
            )
        return _POOL


# ------------------------------------------------------------------------------ transforms


def _column_indices(wanted: Sequence[Any], names: list[str], what: str) -> np.ndarray:
    """Positions of ``wanted`` (names or positions) among the input columns ``names``."""
    wanted = list(wanted)
    if all(isinstance(w, str) for w in wanted):
        missing = [w for w in wanted if w not in names]
        if missing:
            raise UnsupportedModel(f"{what} selects columns {missing} absent from its input")
        return np.asarray([names.index(w) for w in wanted], dtype=np.intp)
    if all(isinstance(w, int | np.integer) and not isinstance(w, bool) for w in wanted):
        return np.asarray(wanted, dtype=np.intp)
    raise UnsupportedModel(f"{what} selects columns by {type(wanted[0]).__name__}")


def _check_names(step: Any, names: list[str]) -> None:
    """The step was fitted on these columns, in this order (else scikit-learn would refuse)."""
    fitted = getattr(step, "feature_names_in_", None)
    if fitted is not None and list(fitted) != names:
        raise UnsupportedModel(f"{type(step).__name__} was fitted on other columns")
    count = getattr(step, "n_features_in_", None)
    if count is not None and count != len(names):
        raise UnsupportedModel(f"{type(step).__name__} expects {count} columns, not {len(names)}")


def _one_hot(encoder: Any, names: list[str]) -> tuple[Transform, list[str]]:
    """A fitted ``OneHotEncoder`` (no dropped or infrequent categories) as a numpy transform."""
    _check_names(encoder, names)
    if getattr(encoder, "drop_idx_", None) is not None:
        raise UnsupportedModel("OneHotEncoder with dropped categories")
    if getattr(encoder, "_infrequent_enabled", False):
        raise UnsupportedModel("OneHotEncoder with infrequent categories")
    categories = [np.asarray(c) for c in encoder.categories_]
    if any(c.dtype.kind not in "iuf" for c in categories):
        raise UnsupportedModel("OneHotEncoder with non-numeric categories")
    ignore = encoder.handle_unknown != "error"
    dtype = np.dtype(encoder.dtype)
    out_names = [f"{names[j]}_{value}" for j, c in enumerate(categories) for value in c]

    def transform(X: np.ndarray) -> np.ndarray:
        blocks = []
        for j, values in enumerate(categories):
            hits = X[:, j, None] == values[None, :]
            if not ignore and not hits.any(axis=1).all():
                row = int(np.flatnonzero(~hits.any(axis=1))[0])
                raise ValueError(
                    f"Found unknown categories [{X[row, j]}] in column {j} during transform"
                )
            blocks.append(hits)
        return np.hstack(blocks).astype(dtype)

    return transform, out_names


def _scaler(scaler: Any, names: list[str]) -> tuple[Transform, list[str]]:
    """A fitted ``StandardScaler`` as a numpy transform (scikit-learn's two in-place steps)."""
    _check_names(scaler, names)
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def transform(X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=np.float64)
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out

    return transform, list(names)


def _column_transformer(ct: Any, names: list[str]) -> tuple[Transform, list[str]]:
    """A fitted ``ColumnTransformer`` of one-hot encoders, scalers, passthrough and drop."""
    _check_names(ct, names)
    parts: list[tuple[np.ndarray, Transform | None]] = []
    out_names: list[str] = []
    for name, transformer, columns in ct.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if isinstance(columns, str | int) or not isinstance(columns, Sequence | np.ndarray):
            raise UnsupportedModel(f"ColumnTransformer part {name!r} selects {columns!r}")
        if not len(columns):
            continue
        if np.asarray(columns).dtype == bool:
            raise UnsupportedModel(f"ColumnTransformer part {name!r} selects by a mask")
        indices = _column_indices(columns, names, f"ColumnTransformer part {name!r}")
        selected = [names[i] for i in indices]
        if isinstance(transformer, str) and transformer == "passthrough":
            parts.append((indices, None))
            out_names.extend(selected)
            continue
        inner, inner_names = _transform_of(transformer, selected)
        parts.append((indices, inner))
        out_names.extend(inner_names)

    def transform(X: np.ndarray) -> np.ndarray:
        blocks = [X[:, idx] if fn is None else fn(X[:, idx]) for idx, fn in parts]
        return np.hstack([np.asarray(b, dtype=np.float64) for b in blocks])

    return transform, out_names


def _indicator_counts(step: IndicatorCountFeatures, names: list[str]) -> tuple[Transform, list]:
    """``IndicatorCountFeatures``: the feature columns, then the count of each indicator value."""
    selected = [str(n) for n in step.feature_names_in_]
    indices = _column_indices(selected, names, "IndicatorCountFeatures")
    values = np.asarray(list(INDICATOR_COUNTS.values()), dtype=np.float64)

    def transform(X: np.ndarray) -> np.ndarray:
        from network_security.tree_kernels import indicator_counts

        out = np.empty((len(X), len(indices) + len(values)))
        return indicator_counts(np.ascontiguousarray(X, np.float64), indices, values, out)

    return transform, [*selected, *INDICATOR_COUNTS]


def _category_codes(step: CategoryCodes, names: list[str]) -> tuple[Transform, list[str]]:
    """``CategoryCodes``: its columns shifted by ``CATEGORY_OFFSET``, the others unchanged."""
    inputs = [str(n) for n in step.feature_names_in_]
    order = _column_indices(inputs, names, "CategoryCodes")
    coded = _column_indices([str(c) for c in step.columns], inputs, "CategoryCodes")

    def transform(X: np.ndarray) -> np.ndarray:
        out = np.array(X[:, order], dtype=np.float64)
        out[:, coded] += CATEGORY_OFFSET
        return out

    return transform, inputs


def _transform_of(step: Any, names: list[str]) -> tuple[Transform, list[str]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(step, IndicatorCountFeatures):
        return _indicator_counts(step, names)
    if isinstance(step, CategoryCodes):
        return _category_codes(step, names)
    if isinstance(step, ColumnTransformer):
        return _column_transformer(step, names)
    if isinstance(step, OneHotEncoder):
        return _one_hot(step, names)
    if isinstance(step, StandardScaler):
        return _scaler(step, names)
    raise UnsupportedModel(f"transform {type(step).__name__}")


# ------------------------------------------------------------------------------ trees


@dataclass
class _Trees:
    """One fitted tree ensemble classifier, evaluated for the class at ``column`` by the numba
    kernels of ``network_security.tree_kernels`` over its trees laid out as ``tables``."""

    classifier: Any
    column: int
    tables: dict[str, np.ndarray] = field(repr=False)
    boosting_inputs: Transform | None = field(default=None, repr=False)  # gradient boosting
    baseline: float = 0.0  # gradient boosting: the raw prediction before the first tree
    link: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    variant_tables: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def probability(self, X: np.ndarray) -> np.ndarray:
        """P(class ``column``) for each row of the float64 matrix ``X``."""
        if self.boosting_inputs is None:
            return _in_row_blocks(self._forest, X)
        return _in_row_blocks(self._boosting, X)

    def variant_probability(self, B: np.ndarray, V: np.ndarray) -> np.ndarray:
        """P(class ``column``) of each row's variants and then of the row itself: shape
        (rows, variants + 1), for the rows ``B`` (rows, columns) and their variants ``V``
        (rows, variants, columns); the numbers ``probability`` gives for those rows."""
        from network_security import tree_kernels

        if self.variant_tables is None:
            self.variant_tables = (
                tree_kernels.forest_node_tables(self.classifier, self.column)
                if self.boosting_inputs is None
                else self.tables
            )
        n, variants, columns = V.shape
        if self.boosting_inputs is None:
            out = np.zeros((n, variants + 1))
        else:
            B = self.boosting_inputs(B)
            V = self.boosting_inputs(V.reshape(-1, columns)).reshape(n, variants, -1)
            out = np.full((n, variants + 1), self.baseline)
        count, values, masks, enough = tree_kernels.variant_groups(B, V, VARIANT_GROUPS)
        if not enough:  # a cell with more changed values than usual: room for all of them
            count, values, masks, _ = tree_kernels.variant_groups(B, V, variants)
        if self.boosting_inputs is None:  # the walk reads only these: the forest's float32 values
            B, values = (a.astype(np.float32).astype(np.float64) for a in (B, values))
        tree_kernels.variant_sums(B, V, count, values, masks, out=out, **self.variant_tables)
        if self.boosting_inputs is None:
            return out / len(self.classifier.estimators_)
        return self.link(out.reshape(-1, 1))[:, self.column].reshape(n, variants + 1)

    def _forest(self, X: np.ndarray) -> np.ndarray:
        from network_security.tree_kernels import forest_sums

        # scikit-learn's forests compare float32 inputs (its DTYPE) with float64 thresholds
        total = forest_sums(X.astype(np.float32), out=np.zeros(len(X)), **self.tables)
        total /= len(self.classifier.estimators_)  # the sum in tree order, then one division
        return total

    def _boosting(self, X: np.ndarray) -> np.ndarray:
        from network_security.tree_kernels import boosting_sums

        # HistGradientBoostingClassifier._raw_predict, binary: the baseline plus each tree's
        # value in order, then the link function; its input validation and threads left out
        raw = np.full(len(X), self.baseline, dtype=np.float64)
        boosting_sums(self.boosting_inputs(X), out=raw, **self.tables)
        return self.link(raw[:, None])[:, self.column]


def _boosting_inputs(classifier: Any) -> Transform:
    """What ``HistGradientBoostingClassifier`` makes of its input before its trees (its
    ``_preprocess_X``): the float64 matrix as it is, or, with categorical features, the
    categorical columns' ordinal codes (unknown values NaN) followed by the other columns, as
    its internal ``ColumnTransformer`` of an ``OrdinalEncoder`` and a passthrough does."""
    preprocessor = getattr(classifier, "_preprocessor", None)
    if preprocessor is None:
        return lambda X: np.ascontiguousarray(X, dtype=np.float64)
    steps = {name: (step, columns) for name, step, columns in preprocessor.transformers_}
    if set(steps) - {"encoder", "numerical", "remainder"} or "encoder" not in steps:
        raise UnsupportedModel("a gradient boosting input preprocessor of another shape")
    encoder, categorical = steps["encoder"]
    numerical = steps.get("numerical", (None, np.zeros_like(categorical)))[1]
    if getattr(encoder, "handle_unknown", None) != "use_encoded_value" or not (
        np.isnan(encoder.unknown_value) and np.isnan(encoder.encoded_missing_value)
    ):
        raise UnsupportedModel("a gradient boosting category encoder of another kind")
    categorical_at = np.flatnonzero(np.asarray(categorical, dtype=bool))
    numerical_at = np.flatnonzero(np.asarray(numerical, dtype=bool))
    known = [np.asarray(c, dtype=np.float64) for c in encoder.categories_]
    known = [values[~np.isnan(values)] for values in known]  # missing is NaN either way
    # the sorted known values of each categorical column as one NaN-padded table (no cell
    # equals NaN)
    table = np.full((len(known), max(map(len, known), default=0) + 1), np.nan)
    for position, values in enumerate(known):
        table[position, : len(values)] = np.sort(values)

    def transform(X: np.ndarray) -> np.ndarray:
        from network_security.tree_kernels import category_codes

        out = np.empty((len(X), len(categorical_at) + len(numerical_at)), dtype=np.float64)
        category_codes(np.ascontiguousarray(X, dtype=np.float64), categorical_at, table, out)
        out[:, len(categorical_at) :] = X[:, numerical_at]
        return out

    return transform


def _in_row_blocks(
    block: Callable[[np.ndarray], np.ndarray], X: np.ndarray, min_rows: int = PARALLEL_MIN_ROWS
) -> np.ndarray:
    """``block`` of ``X``, computed over row blocks of at least ``min_rows`` in parallel threads
    for large batches (the tree traversals release the GIL); each row's result is the same
    either way."""
    threads = min(_thread_count(), max(len(X) // min_rows, 1))
    if threads == 1:
        return block(X)
    bounds = np.linspace(0, len(X), threads + 1).astype(int)
    parts = [X[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return np.concatenate(list(_pool().map(block, parts)))


def _trees_of(classifier: Any, column: int) -> _Trees:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )

    if not isinstance(
        classifier, RandomForestClassifier | ExtraTreesClassifier | HistGradientBoostingClassifier
    ):
        raise UnsupportedModel(f"classifier {type(classifier).__name__}")
    if len(classifier.classes_) != 2 or getattr(classifier, "n_outputs_", 1) != 1:
        raise UnsupportedModel("a classifier that is not binary with one output")
    try:
        from network_security import tree_kernels
    except ImportError as error:
        raise UnsupportedModel(f"numba is not installed ({error})") from error
    if isinstance(classifier, HistGradientBoostingClassifier):
        if classifier.n_trees_per_iteration_ != 1:
            raise UnsupportedModel("gradient boosting with several trees per iteration")
        # scikit-learn's private parts, read here once: a release that moves them fails here
        return _Trees(classifier, column, tree_kernels.boosting_tables(classifier),
                      _boosting_inputs(classifier),
                      float(classifier._baseline_prediction.ravel()[0]),
                      classifier._loss.predict_proba)  # fmt: skip
    return _Trees(classifier, column, tree_kernels.forest_tables(classifier, column))


# ------------------------------------------------------------------------------ models


@dataclass
class _Member:
    """A full model: transforms, then one tree ensemble."""

    transforms: list[Transform]
    trees: _Trees
    order: np.ndarray | None  # the classifier's columns among the last transform's outputs

    def probability(self, X: np.ndarray) -> np.ndarray:
        for transform in self.transforms:
            X = transform(X)
        if self.order is not None:
            X = X[:, self.order]
        return self.trees.probability(np.asarray(X, dtype=np.float64))

    def variant_probability(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        """``_Trees.variant_probability`` of rows ``X`` and their variants ``V``."""
        n, variants, columns = V.shape
        V = V.reshape(-1, columns)
        for transform in self.transforms:  # row by row: the rows and their variants apart
            X, V = transform(X), transform(V)
        if self.order is not None:
            X, V = X[:, self.order], V[:, self.order]
        X, V = np.asarray(X, dtype=np.float64), np.asarray(V, dtype=np.float64)
        return self.trees.variant_probability(X, V.reshape(n, variants, -1))


def _member_of(model: Any, names: list[str], column: int) -> _Member:
    from sklearn.pipeline import Pipeline

    steps = list(model.steps) if isinstance(model, Pipeline) else [("classifier", model)]
    transforms: list[Transform] = []
    for _, step in steps[:-1]:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        transform, names = _transform_of(step, names)
        transforms.append(transform)
    classifier = steps[-1][1]
    fitted = getattr(classifier, "feature_names_in_", None)
    order = None
    if fitted is not None and list(fitted) != names:
        order = _column_indices([str(n) for n in fitted], names, type(classifier).__name__)
    elif getattr(classifier, "n_features_in_", len(names)) != len(names):
        raise UnsupportedModel(f"{type(classifier).__name__} expects other columns")
    return _Member(transforms, _trees_of(classifier, column), order)


@dataclass
class CompiledPredictor:
    """P(phishing) of a fitted model, from a numeric matrix of its feature columns."""

    feature_columns: list[str]
    members: list[_Member]
    weights: list[float] | None
    description: str

    def phishing_probability(self, X: np.ndarray) -> np.ndarray:
        """P(phishing) per row of ``X`` (columns: ``feature_columns``, any numeric dtype)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_columns):
            raise ValueError(
                f"Expected a matrix of {len(self.feature_columns)} feature columns, got shape "
                f"{X.shape}."
            )
        if len(self.members) == 1:
            return self.members[0].probability(X)
        if MEMBERS_PARALLEL_MIN_ROWS <= len(X) < 2 * PARALLEL_MIN_ROWS and _thread_count() > 1:
            # (larger batches are split in row blocks on the same pool instead)
            stacked = np.asarray(list(_pool().map(lambda m: m.probability(X), self.members)))
        else:
            stacked = np.asarray([member.probability(X) for member in self.members])
        return np.average(stacked, axis=0, weights=self.weights)

    def phishing_probability_of_variants(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        """P(phishing) of the variants ``V`` (rows, variants, columns) of each row of ``X``:
        shape (rows, variants), the numbers ``phishing_probability`` gives for them (the same
        sums in the same order), computed with each tree walked once per row and once per group
        of variants that leaves the row's path, not once per variant."""
        X = np.asarray(X, dtype=np.float64)
        V = np.asarray(V, dtype=np.float64)
        if V.ndim != 3 or V.shape[0] != len(X) or V.shape[2] != len(self.feature_columns):
            raise ValueError(
                f"Expected variants of shape (rows, variants, columns), got {V.shape}."
            )
        if V.shape[1] > MAX_VARIANTS:
            raise ValueError(f"At most {MAX_VARIANTS} variants per row, got {V.shape[1]}.")

        def block(rows: np.ndarray) -> np.ndarray:
            rows = slice(rows[0], rows[-1] + 1)  # consecutive: views, not copies
            stacked = [m.variant_probability(X[rows], V[rows]) for m in self.members]
            return np.average(np.asarray(stacked), axis=0, weights=self.weights)

        variants = V.shape[1] + 1
        if not len(X):
            return np.empty((0, variants - 1))
        every = np.arange(len(X))
        return _in_row_blocks(block, every, max(PARALLEL_MIN_ROWS // variants, 1))[:, :-1]


def compile_estimator(
    estimator: Any, feature_columns: Sequence[str], phishing_label: int
) -> CompiledPredictor:
    """The ``CompiledPredictor`` of a fitted model (see the module docstring for the shapes).

    Raises:
        UnsupportedModel: For any part it does not evaluate, naming it.
    """
    from sklearn.ensemble import VotingClassifier

    names = [str(c) for c in feature_columns]
    classes = list(getattr(estimator, "classes_", []))
    if phishing_label not in classes:
        raise UnsupportedModel(f"classes {classes} without the phishing label {phishing_label}")
    column = classes.index(phishing_label)
    if isinstance(estimator, VotingClassifier):
        if estimator.voting != "soft":
            raise UnsupportedModel(f"VotingClassifier with voting={estimator.voting!r}")
        members = []
        for member in estimator.estimators_:
            member_classes = list(getattr(member, "classes_", []))
            if member_classes != list(range(len(classes))):
                raise UnsupportedModel("a voting member with unexpected classes")
            members.append(_member_of(member, names, column))
        weights = estimator._weights_not_none  # the weights predict_proba applies
        kinds = ", ".join(type(m.trees.classifier).__name__ for m in members)
        description = f"soft vote of {kinds}"
    else:
        members = [_member_of(estimator, names, column)]
        weights = None
        description = type(members[0].trees.classifier).__name__
    predictor = CompiledPredictor(names, members, weights, description)
    # the kernels compile (or load from numba's cache) now, not in the first request (the
    # variants' kernels, for reasons, take about 4 s to compile)
    predictor.phishing_probability(np.zeros((1, len(names))))
    predictor.phishing_probability_of_variants(
        np.zeros((1, len(names))), np.ones((1, 1, len(names)))
    )
    return predictor


# ------------------------------------------------------------------------------ the check


def reference_rows(
    feature_columns: Sequence[str],
    training_reference: Mapping[str, Any] | None = None,
    rows: int = REFERENCE_ROWS,
    seed: int = 0,
) -> np.ndarray:
    """The rows the compiled path is checked on (float64, one column per feature).

    Every allowed value of each indicator (rows of ``INDICATOR_VALUES`` and of any other value
    the training reference lists), ``rows`` seeded random rows over ``INDICATOR_VALUES``, and,
    when the model carries its training reference (``drift.build_drift_reference``: category
    frequencies per feature), ``rows`` more drawn from those frequencies.
    """
    rng = np.random.default_rng(seed)
    features = (training_reference or {}).get("features") or {}
    values = [
        sorted({*INDICATOR_VALUES, *(int(v) for v in features.get(name, {}).get("counts", {}))})
        for name in feature_columns
    ]
    every_value = [[v[k % len(v)] for v in values] for k in range(max(map(len, values)))]
    parts = [np.asarray(every_value), rng.choice(INDICATOR_VALUES, (rows, len(values)))]
    if feature_columns and all(name in features for name in feature_columns):
        drawn = []
        for name in feature_columns:
            frequencies = features[name]["frequencies"]
            weights = np.asarray([float(f) for f in frequencies.values()])
            codes = np.asarray([int(value) for value in frequencies])
            drawn.append(rng.choice(codes, rows, p=weights / weights.sum()))
        parts.append(np.column_stack(drawn))
    return np.vstack(parts).astype(np.float64)


def largest_difference(
    predictor: CompiledPredictor, estimator: Any, rows: np.ndarray, phishing_label: int
) -> float:
    """The largest |compiled - ``predict_proba``| P(phishing) over ``rows``, scored at once and
    the first row alone (NaN when either gives a non-finite number; inf for a wrong shape)."""
    frame = pd.DataFrame(rows, columns=predictor.feature_columns)
    column = list(estimator.classes_).index(phishing_label)
    expected = np.asarray(estimator.predict_proba(frame), dtype=np.float64)[:, column]
    got = [predictor.phishing_probability(rows[:1]), predictor.phishing_probability(rows)]
    if [g.shape for g in got] != [(1,), expected.shape]:
        return float("inf")
    return float(np.max(np.abs(np.concatenate(got) - np.concatenate([expected[:1], expected]))))


def verified_predictor(
    estimator: Any,
    feature_columns: Sequence[str],
    phishing_label: int,
    name: str,
    training_reference: Mapping[str, Any] | None = None,
) -> CompiledPredictor | None:
    """The compiled predictor of ``estimator`` when it agrees with the estimator's own
    ``predict_proba`` within ``AGREEMENT_TOLERANCE`` on ``reference_rows``; else ``None`` (score
    with ``predict_proba``), with one warning naming ``name``, the estimator and the difference
    or the error.

    Any error while compiling or checking falls back the same way: the compiler reads private
    parts of scikit-learn's estimators, which a release may move or change (no upper bound on
    scikit-learn), so the check, not the version, decides whether the compiled path is used.
    """
    kind = type(estimator).__name__
    try:
        predictor = compile_estimator(estimator, feature_columns, phishing_label)
        rows = reference_rows(predictor.feature_columns, training_reference)
        difference = largest_difference(predictor, estimator, rows, phishing_label)
    except Exception as error:  # noqa: BLE001 - whatever failed, predict_proba is the answer
        logger.warning(
            "%s: no compiled predictor for its %s (%s: %s); scoring with %s.predict_proba.",
            name, kind, type(error).__name__, error, kind,
        )  # fmt: skip
        return None
    if not difference <= AGREEMENT_TOLERANCE:  # (NaN included)
        logger.warning(
            "%s: the compiled predictor of the %s differs from %s.predict_proba by up to %.3g "
            "on %d reference rows (allowed: %g); scoring with %s.predict_proba.",
            name, predictor.description, kind, difference, len(rows), AGREEMENT_TOLERANCE, kind,
        )  # fmt: skip
        return None
    logger.info(
        "%s: compiled predictor of the %s (equal to %s.predict_proba within %.1g on %d "
        "reference rows)",
        name, predictor.description, kind, AGREEMENT_TOLERANCE, len(rows),
    )  # fmt: skip
    return predictor
