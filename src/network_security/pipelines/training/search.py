"""Duplicate-aware model search: candidate estimators from parameters, grouped CV, OOF scores.

The candidates and their search spaces are data (``training.candidates`` in
conf/base/parameters_training.yml). Each is built into one scikit-learn ``Pipeline``:

    features  ->  [encode]  ->  classifier

``features`` is ``IndicatorCountFeatures`` (the 30 indicators plus the engineered indicator
counts, computed inside the fitted model so inference applies exactly what training fitted).
``encode`` follows the candidate's ``encoding``:

- ``ordinal`` (default): no step; the indicators are fed as the numbers -1 < 0 < 1.
- ``one_hot``: one 0/1 column per indicator value (``OneHotEncoder``) and the counts
  standardised (``StandardScaler``): for linear models, and trees that split per category.
- ``categorical``: ``CategoryCodes`` (indicator + 1, so -1/0/1 -> 0/1/2) and the classifier's
  ``categorical_features`` set to the indicators, so ``HistGradientBoostingClassifier`` splits
  on any subset of an indicator's categories (the values mean phishing-like / suspicious /
  legitimate, not a scale: a suspicious ``SSLfinal_State`` is more often phishing than a
  phishing-like one). The counts stay numeric.

Cross-validation uses ``StratifiedGroupKFold`` with one group per distinct feature vector: about
half the rows of the phishing data set repeat another row's vector, and a plain K-fold would score
a model on copies of its own training rows. Every (configuration, fold) fit runs as one joblib
task: ``n_jobs`` workers (threads by default), each limited to ``threads_per_fit`` OpenMP/BLAS
threads, so the machine's cores are used once (OpenMP estimators slow down by orders of
magnitude when their threads outnumber the free cores).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from kedro.utils import load_obj
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from network_security.features import INDICATOR_COUNTS, CategoryCodes, IndicatorCountFeatures
from network_security.model import flags_phishing

logger = logging.getLogger(__name__)

CLASSIFIER_STEP = "classifier"
ALLOWED_ESTIMATOR_PREFIX = "sklearn."
CANDIDATE_KEYS = frozenset({"estimator", "encoding", "params", "search"})
PARALLEL_BACKENDS = ("threading", "loky")
ENCODINGS = ("ordinal", "one_hot", "categorical")
"""How a candidate's classifier sees the indicators (see the module docstring)."""


@dataclass(frozen=True)
class Configuration:
    """One point of a candidate's search space."""

    config_id: str
    candidate: str
    params: dict[str, Any]


def build_estimator(spec: Mapping[str, Any], random_state: int) -> BaseEstimator:
    """An unfitted scikit-learn estimator from ``{estimator: <class path>, params: {...}}``.

    ``params.estimators`` (a mapping of name -> spec) builds the members of an ensemble such as
    ``VotingClassifier``. ``random_state`` is set where the estimator accepts it and the spec
    does not. Thread counts are not set here: fits run under ``threadpool_limits(threads)``, and
    forests get their ``n_jobs`` from ``build_model_pipeline``.

    Raises:
        ValueError: If the class is not a scikit-learn estimator or a parameter is unknown.
    """
    path = str(spec.get("estimator", ""))
    if not path.startswith(ALLOWED_ESTIMATOR_PREFIX):
        raise ValueError(
            f"Candidate estimator '{path}' is not a scikit-learn class path (e.g. "
            "'sklearn.ensemble.RandomForestClassifier'); fix training.candidates in "
            "conf/base/parameters_training.yml."
        )
    try:
        estimator_class = load_obj(path)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"Cannot import candidate estimator '{path}' ({error}); fix training.candidates in "
            "conf/base/parameters_training.yml."
        ) from error
    params = dict(spec.get("params") or {})
    if "estimators" in params:
        params["estimators"] = [
            (name, build_estimator(member, random_state))
            for name, member in dict(params["estimators"]).items()
        ]
    accepted = estimator_class().get_params(deep=False)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {unknown} for {path}; accepted: {sorted(accepted)}. Fix "
            "training.candidates in conf/base/parameters_training.yml."
        )
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = random_state
    return estimator_class(**params)


def candidate_encoding(name: str, spec: Mapping[str, Any]) -> str:
    """The ``encoding`` of candidate ``name`` (default ``ordinal``).

    Raises:
        ValueError: If the encoding is not one of ``ENCODINGS``.
    """
    encoding = str(spec.get("encoding", "ordinal"))
    if encoding not in ENCODINGS:
        raise ValueError(
            f"training.candidates.{name}.encoding is {encoding!r}; use one of "
            f"{list(ENCODINGS)} in conf/base/parameters_training.yml."
        )
    return encoding


def build_model_pipeline(
    spec: Mapping[str, Any],
    feature_columns: Sequence[str],
    random_state: int,
    engineered_features: bool = True,
    name: str = "candidate",
    tree_jobs: int | None = None,
) -> Pipeline:
    """The full model: engineered features, the candidate's encoding, then the classifier.

    A forest builds its trees on ``tree_jobs`` threads (its ``n_jobs``; joblib threads, which
    the tree builder does not hold the GIL in; its predictions do not depend on it).

    Raises:
        ValueError: If the encoding is unknown, or ``categorical`` is asked of an estimator
            without ``categorical_features``.
    """
    columns = list(feature_columns)
    encoding = candidate_encoding(name, spec)
    steps: list[tuple[str, Any]] = [
        ("features", IndicatorCountFeatures(columns) if engineered_features else "passthrough")
    ]
    classifier = build_estimator(spec, random_state)
    forest = isinstance(classifier, RandomForestClassifier | ExtraTreesClassifier)
    if tree_jobs is not None and forest:
        classifier.set_params(n_jobs=tree_jobs)
    if encoding == "one_hot":
        numeric = list(INDICATOR_COUNTS) if engineered_features else []
        transformers: list[tuple[str, Any, list[str]]] = [
            ("one_hot", OneHotEncoder(handle_unknown="ignore"), columns)
        ]
        if numeric:
            transformers.append(("counts", StandardScaler(), numeric))
        steps.append(("encode", ColumnTransformer(transformers, remainder="drop")))
    elif encoding == "categorical":
        if "categorical_features" not in classifier.get_params(deep=False):
            raise ValueError(
                f"training.candidates.{name}: encoding 'categorical' needs an estimator with "
                f"'categorical_features' (HistGradientBoostingClassifier), not "
                f"{type(classifier).__name__}; use encoding 'one_hot' or 'ordinal'."
            )
        steps.append(("encode", CategoryCodes(columns)))
        classifier.set_params(categorical_features=columns)
    steps.append((CLASSIFIER_STEP, classifier))
    return Pipeline(steps)


def build_ensemble(
    members: Mapping[str, Mapping[str, Any]],
    candidates: Mapping[str, Mapping[str, Any]],
    feature_columns: Sequence[str],
    random_state: int,
    engineered_features: bool = True,
    n_jobs: int | None = None,
    tree_jobs: int | None = None,
) -> VotingClassifier:
    """A soft-voting ensemble of full candidate models (``members``: candidate -> params).

    Each member is its candidate's whole pipeline with the given classifier parameters, so the
    ensemble's P(phishing) is the mean of its members' probabilities. ``n_jobs`` members are
    fitted at once (joblib's active backend; prediction is unaffected); ``tree_jobs``: see
    ``build_model_pipeline``.
    """
    estimators = []
    for name, params in members.items():
        model = build_model_pipeline(
            candidates[name], feature_columns, random_state, engineered_features, name, tree_jobs
        )
        model.set_params(**{f"{CLASSIFIER_STEP}__{k}": v for k, v in dict(params).items()})
        estimators.append((name, model))
    return VotingClassifier(estimators, voting="soft", n_jobs=n_jobs)


def build_selected_model(
    best_candidate: Mapping[str, Any],
    training: Mapping[str, Any],
    feature_columns: Sequence[str],
) -> BaseEstimator:
    """The unfitted model of the selected configuration, ready to fit on any records.

    ``best_candidate`` is ``select_best_candidate``'s output: a candidate's pipeline with the
    winning classifier parameters, or, for an ensemble, the soft vote of its members' best
    configurations. The vote fits its members one after the other: joblib's default process
    pool for ``n_jobs`` members costs more to start (3-4 s here) than a member takes to fit
    (about 1 s); wrap the fit in ``joblib.parallel_config(backend="threading")`` and pass
    ``n_jobs`` to ``build_ensemble`` to overlap them. Forests build their trees on
    ``training.n_jobs`` threads.
    """
    name = str(best_candidate["candidate"])
    seed = int(training.get("random_state", 42))
    engineered = bool(training.get("engineered_features", True))
    jobs = int(training.get("n_jobs", 1))
    params = dict(best_candidate["params"])
    if name in (training.get("ensembles") or {}):
        return build_ensemble(
            params, training["candidates"], feature_columns, seed, engineered, tree_jobs=jobs
        )
    model = build_model_pipeline(
        training["candidates"][name], feature_columns, seed, engineered, name, jobs
    )
    return model.set_params(**{f"{CLASSIFIER_STEP}__{k}": v for k, v in params.items()})


def expand_search_space(candidates: Mapping[str, Mapping[str, Any]]) -> list[Configuration]:
    """Every configuration of every candidate: the ``ParameterGrid`` of each ``search`` mapping.

    Raises:
        ValueError: If there is no candidate, a candidate has an unknown key or encoding, or a
            search value is not a non-empty list.
    """
    if not candidates:
        raise ValueError(
            "No candidate estimators: add at least one under training.candidates in "
            "conf/base/parameters_training.yml."
        )
    configurations = []
    for name, spec in candidates.items():
        unknown = sorted(set(spec) - CANDIDATE_KEYS)
        if unknown or "estimator" not in spec:
            raise ValueError(
                f"training.candidates.{name} must have an 'estimator' and only the keys "
                f"{sorted(CANDIDATE_KEYS)}; got unknown key(s) {unknown}."
            )
        candidate_encoding(name, spec)
        try:
            grid = list(ParameterGrid(dict(spec.get("search") or {})))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"training.candidates.{name}.search must map parameter names to non-empty "
                f"lists of values: {error}"
            ) from error
        configurations.extend(
            Configuration(f"{name}#{index}", name, params) for index, params in enumerate(grid)
        )
    return configurations


def configure_models(
    configurations: Sequence[Configuration],
    candidates: Mapping[str, Mapping[str, Any]],
    feature_columns: Sequence[str],
    random_state: int,
    engineered_features: bool = True,
    tree_jobs: int | None = None,
) -> dict[str, Pipeline]:
    """One unfitted model per configuration: its candidate's pipeline with the searched params
    (``tree_jobs``: see ``build_model_pipeline``)."""
    models = {}
    for configuration in configurations:
        model = build_model_pipeline(
            candidates[configuration.candidate],
            feature_columns,
            random_state,
            engineered_features,
            configuration.candidate,
            tree_jobs,
        )
        models[configuration.config_id] = model.set_params(
            **{f"{CLASSIFIER_STEP}__{k}": v for k, v in configuration.params.items()}
        )
    return models


def phishing_probability(estimator: Any, frame: pd.DataFrame, phishing_label: int) -> np.ndarray:
    """P(phishing) from a fitted classifier whose ``classes_`` contain ``phishing_label``."""
    column = list(estimator.classes_).index(phishing_label)
    return estimator.predict_proba(frame)[:, column]


def _fit_and_predict(
    model: Pipeline,
    features: pd.DataFrame,
    labels: np.ndarray,
    train_index: np.ndarray,
    test_index: np.ndarray,
    phishing_label: int,
    threads: int | None,
) -> np.ndarray:
    """Fit a clone on one fold's training rows; P(phishing) for its validation rows.

    ``threads`` limits the OpenMP/BLAS threads of a worker process; ``None`` leaves the limit
    to the caller (worker threads share the process's limit).
    """
    with nullcontext() if threads is None else threadpool_limits(limits=threads):
        fitted = clone(model).fit(features.iloc[train_index], labels[train_index])
        return phishing_probability(fitted, features.iloc[test_index], phishing_label)


def score_probabilities(
    labels: np.ndarray, probability: np.ndarray, phishing_label: int, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy (at ``threshold``) and ROC-AUC, phishing as the positive class."""
    is_phishing = labels == phishing_label
    predicted_phishing = flags_phishing(probability, threshold)
    scores = {"accuracy": float(accuracy_score(is_phishing, predicted_phishing))}
    scores["roc_auc"] = (
        float(roc_auc_score(is_phishing, probability))
        if 0 < is_phishing.sum() < len(is_phishing)
        else float("nan")
    )
    return scores


def summarize_configuration(
    config_id: str,
    candidate: str,
    params: dict[str, Any],
    labels: np.ndarray,
    pooled: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    phishing_label: int,
    distinct_rows: np.ndarray,
) -> dict[str, Any]:
    """One row of CV results from a configuration's out-of-fold P(phishing).

    ``cv_*`` are the mean (and std) of the per-fold scores; ``oof_*`` the scores of the pooled
    out-of-fold predictions; ``oof_*_distinct`` the same on the distinct records only (each
    (feature vector, label) pair once; ``distinct_rows`` marks their first occurrences), which
    tells how the model does per site rather than per repeated row.
    """
    fold_scores = [
        score_probabilities(labels[test_index], pooled[test_index], phishing_label)
        for _, test_index in folds
    ]
    pooled_scores = score_probabilities(labels, pooled, phishing_label)
    distinct_scores = score_probabilities(
        labels[distinct_rows], pooled[distinct_rows], phishing_label
    )
    return {
        "config_id": config_id,
        "candidate": candidate,
        "params": params,
        "cv_accuracy": float(np.mean([s["accuracy"] for s in fold_scores])),
        "cv_accuracy_std": float(np.std([s["accuracy"] for s in fold_scores])),
        "cv_roc_auc": float(np.mean([s["roc_auc"] for s in fold_scores])),
        "cv_roc_auc_std": float(np.std([s["roc_auc"] for s in fold_scores])),
        "oof_accuracy": pooled_scores["accuracy"],
        "oof_roc_auc": pooled_scores["roc_auc"],
        "oof_accuracy_distinct": distinct_scores["accuracy"],
        "oof_roc_auc_distinct": distinct_scores["roc_auc"],
    }


def cross_validate_configurations(
    configurations: Sequence[Configuration],
    models: Mapping[str, Pipeline],
    features: pd.DataFrame,
    labels: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    phishing_label: int,
    n_jobs: int,
    threads: int,
    backend: str = "threading",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped CV of every configuration: per-configuration scores and OOF probabilities.

    ``models`` maps each ``config_id`` to its unfitted model (see ``configure_models``). The
    (configuration, fold) fits run on ``n_jobs`` workers of joblib's ``backend``, each with
    ``threads`` OpenMP/BLAS threads: ``threading`` (threads of this process: no start-up, the
    tree builders release the GIL) or ``loky`` (worker processes: a few seconds to start,
    scales where the GIL would bind).

    Returns:
        ``(results, oof)``: one row per configuration (see ``summarize_configuration``), and
        one column of out-of-fold P(phishing) per configuration (index = row of ``features``).
    """
    # fold by fold, so the workers tend to run different estimators side by side (a boosting
    # fit holds the GIL more than a forest's tree building)
    tasks = [
        (configuration, train_index, test_index)
        for train_index, test_index in folds
        for configuration in configurations
    ]
    if backend not in PARALLEL_BACKENDS:
        raise ValueError(
            f"training.parallel_backend must be one of {list(PARALLEL_BACKENDS)}, got "
            f"{backend!r}; fix conf/base/parameters_training.yml."
        )
    if backend == "threading":  # one process-wide limit, set once (not per worker thread)
        context = parallel_config(backend="threading")
        limits, task_threads = threadpool_limits(limits=threads), None
    else:
        context = parallel_config(backend="loky", inner_max_num_threads=threads)
        limits, task_threads = nullcontext(), threads
    with context, limits:
        predictions = Parallel(n_jobs=n_jobs)(
            delayed(_fit_and_predict)(
                models[configuration.config_id],
                features,
                labels,
                train_index,
                test_index,
                phishing_label,
                task_threads,
            )
            for configuration, train_index, test_index in tasks
        )
    distinct_rows = distinct_records(features, labels)
    pooled = {c.config_id: np.full(len(features), np.nan) for c in configurations}
    for (configuration, _, test_index), probability in zip(tasks, predictions, strict=True):
        pooled[configuration.config_id][test_index] = probability
    rows = [
        summarize_configuration(
            c.config_id,
            c.candidate,
            dict(c.params),
            labels,
            pooled[c.config_id],
            folds,
            phishing_label,
            distinct_rows,
        )
        for c in configurations
    ]
    return pd.DataFrame(rows), pd.DataFrame(pooled, index=features.index)


def distinct_records(features: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each distinct (feature vector, label) record."""
    frame = features.reset_index(drop=True).assign(__label=labels)
    return ~frame.duplicated().to_numpy()


def score_ensembles(
    results: pd.DataFrame,
    oof: pd.DataFrame,
    ensembles: Mapping[str, Mapping[str, Any]],
    features: pd.DataFrame,
    labels: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    phishing_label: int,
    selection_metric: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add soft-voting ensembles of the candidates' best configurations to the CV results.

    An ensemble averages the out-of-fold P(phishing) of each member candidate's best
    configuration (by ``selection_metric``). On the same folds this is exactly the CV of the
    soft-voting ensemble of those configurations, so ensembles cost no extra fits.

    Raises:
        ValueError: If an ensemble names an unknown candidate or fewer than two members.
    """
    distinct_rows = distinct_records(features, labels)
    rows, columns = [], {}
    for name, spec in ensembles.items():
        members = list(spec.get("members") or [])
        unknown = sorted(set(members) - set(results["candidate"]))
        if len(members) < 2 or unknown:
            raise ValueError(
                f"training.ensembles.{name}.members must list at least two candidates of "
                f"training.candidates; got {members} (unknown: {unknown})."
            )
        best = {
            member: results[results["candidate"] == member]
            .sort_values([f"cv_{selection_metric}", "config_id"], ascending=[False, True])
            .iloc[0]
            for member in members
        }
        config_id = f"{name}#0"
        columns[config_id] = oof[[row["config_id"] for row in best.values()]].mean(axis=1)
        rows.append(
            summarize_configuration(
                config_id,
                name,
                {member: dict(row["params"]) for member, row in best.items()},
                labels,
                columns[config_id].to_numpy(),
                folds,
                phishing_label,
                distinct_rows,
            )
        )
    if not rows:
        return results, oof
    return (
        pd.concat([results, pd.DataFrame(rows)], ignore_index=True),
        pd.concat([oof, pd.DataFrame(columns, index=oof.index)], axis=1),
    )
