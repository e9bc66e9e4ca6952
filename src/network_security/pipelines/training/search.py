"""The candidate models: scikit-learn estimators built from the parameters, and their search space.

The candidates and their search spaces are data (``training.candidates`` in
conf/base/parameters_training.yml, validated by ``params.CandidateSpec``). Each is built into
one scikit-learn ``Pipeline``:

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
  legitimate, not a scale). The counts stay numeric.

Ensembles (``training.ensembles``) are soft votes of their members' full pipelines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kedro.utils import load_obj
from pydantic import ValidationError
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from network_security.features import INDICATOR_COUNTS, CategoryCodes, IndicatorCountFeatures
from network_security.parameters import describe_errors
from network_security.pipelines.training.params import CONFIG_FILE, CandidateSpec, TrainingParams

CLASSIFIER_STEP = "classifier"


@dataclass(frozen=True)
class Configuration:
    """One point of a candidate's search space."""

    config_id: str
    candidate: str
    params: dict[str, Any]


def _spec(spec: CandidateSpec | Mapping[str, Any], name: str = "candidate") -> CandidateSpec:
    """``spec`` as a ``CandidateSpec``; ``ValueError`` naming ``training.candidates.<name>``."""
    if isinstance(spec, CandidateSpec):
        return spec
    try:
        return CandidateSpec.model_validate(dict(spec))
    except ValidationError as error:
        raise ValueError(
            describe_errors(f"training.candidates.{name}", error, CONFIG_FILE)
        ) from None


def build_estimator(spec: CandidateSpec | Mapping[str, Any], random_state: int) -> BaseEstimator:
    """An unfitted classifier from ``spec`` (class path and fixed ``params``); ``random_state``
    is set where the estimator accepts it and the spec does not.

    Thread counts are not set here: fits run under ``threadpool_limits(threads)``, and
    forests get their ``n_jobs`` from ``build_model_pipeline``.
    """
    spec = _spec(spec)
    estimator = load_obj(spec.estimator)(**spec.params)
    if "random_state" in estimator.get_params(deep=False) and "random_state" not in spec.params:
        estimator.set_params(random_state=random_state)
    return estimator


def build_model_pipeline(
    spec: CandidateSpec | Mapping[str, Any],
    feature_columns: Sequence[str],
    random_state: int,
    engineered_features: bool = True,
    name: str = "candidate",
    tree_jobs: int | None = None,
) -> Pipeline:
    """The full model: engineered features, the candidate's encoding, then the classifier.

    A forest builds its trees on ``tree_jobs`` threads (its ``n_jobs``; joblib threads, which
    the tree builder does not hold the GIL in; its predictions do not depend on it). ``name``
    names the candidate in errors.
    """
    spec = _spec(spec, name)
    columns = list(feature_columns)
    steps: list[tuple[str, Any]] = [
        ("features", IndicatorCountFeatures(columns) if engineered_features else "passthrough")
    ]
    classifier = build_estimator(spec, random_state)
    forest = isinstance(classifier, RandomForestClassifier | ExtraTreesClassifier)
    if tree_jobs is not None and forest:
        classifier.set_params(n_jobs=tree_jobs)
    if spec.encoding == "one_hot":
        numeric = list(INDICATOR_COUNTS) if engineered_features else []
        transformers: list[tuple[str, Any, list[str]]] = [
            ("one_hot", OneHotEncoder(handle_unknown="ignore"), columns)
        ]
        if numeric:
            transformers.append(("counts", StandardScaler(), numeric))
        steps.append(("encode", ColumnTransformer(transformers, remainder="drop")))
    elif spec.encoding == "categorical":
        steps.append(("encode", CategoryCodes(columns)))
        classifier.set_params(categorical_features=columns)
    steps.append((CLASSIFIER_STEP, classifier))
    return Pipeline(steps)


def with_classifier_params(model: Pipeline, params: Mapping[str, Any]) -> Pipeline:
    """``model`` with ``params`` set on its classifier step."""
    return model.set_params(**{f"{CLASSIFIER_STEP}__{k}": v for k, v in dict(params).items()})


def build_ensemble(
    members: Mapping[str, Mapping[str, Any]],
    candidates: Mapping[str, CandidateSpec | Mapping[str, Any]],
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
    estimators = [
        (
            name,
            with_classifier_params(
                build_model_pipeline(
                    candidates[name],
                    feature_columns,
                    random_state,
                    engineered_features,
                    name,
                    tree_jobs,
                ),
                params,
            ),
        )  # fmt: skip
        for name, params in members.items()
    ]
    return VotingClassifier(estimators, voting="soft", n_jobs=n_jobs)


def build_selected_model(
    best_candidate: Mapping[str, Any],
    training: TrainingParams | Mapping[str, Any],
    feature_columns: Sequence[str],
) -> BaseEstimator:
    """The unfitted model of the selected configuration, ready to fit on any records.

    ``best_candidate`` names a ``candidate`` and its classifier ``params``, or, for an
    ensemble, the params of each member. The vote fits its members one after the other:
    joblib's default process pool costs more to start (3-4 s) than a member takes to fit (about
    1 s). Forests build their trees on ``training.n_jobs`` threads.
    """
    training = TrainingParams.parse(training)
    name, params = str(best_candidate["candidate"]), dict(best_candidate["params"])
    seed, engineered, jobs = (
        training.random_state,
        training.engineered_features,
        training.n_jobs,
    )
    if name in training.ensembles:
        return build_ensemble(
            params, training.candidates, feature_columns, seed, engineered, tree_jobs=jobs
        )
    model = build_model_pipeline(
        training.candidates[name], feature_columns, seed, engineered, name, jobs
    )
    return with_classifier_params(model, params)


def expand_search_space(candidates: Mapping[str, CandidateSpec]) -> list[Configuration]:
    """Every configuration of every candidate: the ``ParameterGrid`` of each ``search``."""
    return [
        Configuration(f"{name}#{index}", name, params)
        for name, spec in candidates.items()
        for index, params in enumerate(ParameterGrid(spec.search))
    ]


def configure_models(
    configurations: Sequence[Configuration],
    training: TrainingParams,
    feature_columns: Sequence[str],
) -> dict[str, Pipeline]:
    """One unfitted model per configuration: its candidate's pipeline with the searched
    params; forests build their trees on ``training.n_jobs`` threads."""
    return {
        configuration.config_id: with_classifier_params(
            build_model_pipeline(
                training.candidates[configuration.candidate],
                feature_columns,
                training.random_state,
                training.engineered_features,
                configuration.candidate,
                training.n_jobs,
            ),
            configuration.params,
        )
        for configuration in configurations
    }
