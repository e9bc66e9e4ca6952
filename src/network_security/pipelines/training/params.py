"""The training parameters (``training`` in conf/base/parameters_training.yml) as one typed,
validated pydantic model, parsed once per run by the ``parse_training_parameters`` node.

Every value the project uses is set in the YAML file, which documents each setting and its
range; the model declares types and ranges, and no value of its own, except the keys the YAML
leaves out on purpose (a candidate's ``encoding``, ``params`` and ``search``, and the optional
``baseline``). A bad or missing key fails the run before any fit, with the key, the value and
what is expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from kedro.utils import load_obj
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from network_security.parameters import describe_errors

ENCODINGS = ("ordinal", "one_hot", "categorical")
"""How a candidate's classifier sees the indicators (see ``search``)."""
METRIC_NAMES: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")
ALLOWED_ESTIMATOR_PREFIX = "sklearn."
CONFIG_FILE = "conf/base/parameters_training.yml"

Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]
Fraction = Annotated[float, Field(ge=0, le=1)]
GateKey = Literal["min_accuracy", "min_precision", "min_recall", "min_f1", "min_roc_auc"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CandidateSpec(_Section):
    """One candidate estimator: a scikit-learn class path, fixed ``params``, a ``search`` grid
    (``ParameterGrid``) over classifier parameters, and how it sees the indicators."""

    estimator: str
    encoding: Literal["ordinal", "one_hot", "categorical"] = "ordinal"
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_estimator(self) -> CandidateSpec:
        if not self.estimator.startswith(ALLOWED_ESTIMATOR_PREFIX):
            raise ValueError(
                f"estimator {self.estimator!r} is not a scikit-learn class path (e.g. "
                "'sklearn.ensemble.RandomForestClassifier')"
            )
        try:
            accepted = load_obj(self.estimator)().get_params(deep=False)
        except (ImportError, AttributeError, TypeError) as error:
            raise ValueError(f"estimator {self.estimator!r} cannot be built ({error})") from None
        if unknown := sorted((set(self.params) | set(self.search)) - set(accepted)):
            raise ValueError(
                f"unknown parameter(s) {unknown} for {self.estimator}; accepted: {sorted(accepted)}"
            )
        if self.encoding == "categorical" and "categorical_features" not in accepted:
            raise ValueError(
                "encoding 'categorical' needs an estimator with 'categorical_features' "
                f"(HistGradientBoostingClassifier), not {self.estimator}; use 'one_hot' or "
                "'ordinal'"
            )
        return self


class EnsembleSpec(_Section):
    """A soft vote of the best configuration of each member candidate."""

    members: list[str] = Field(min_length=2)


class CVParams(_Section):
    n_splits: int = Field(ge=2)
    random_state: int


class BaselineParams(_Section):
    cv_accuracy: Fraction
    source: str


class ThresholdParams(_Section):
    objective: Literal["f1", "accuracy"]
    min: Fraction
    max: Fraction
    step: float = Field(gt=0, le=1)
    min_gain: float = Field(ge=0)

    @model_validator(mode="after")
    def _check_range(self) -> ThresholdParams:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class FeatureImportanceParams(_Section):
    n_repeats: PositiveInt


class PromotionParams(_Section):
    metric: Metric
    min_improvement: float = Field(ge=0)
    min_evidence_rows: PositiveInt


Budget = Annotated[float, Field(gt=0, lt=0.5)]


class DecisionParams(_Section):
    """The error budget of the decisions: at most ``max_missed_phishing`` of the phishing sites
    get ``allow``, at most ``max_false_block`` of the legitimate ones get ``block``."""

    max_missed_phishing: Budget
    max_false_block: Budget


class TrainingParams(_Section):
    """All the training parameters (see conf/base/parameters_training.yml for each one)."""

    random_state: int
    n_jobs: PositiveInt
    threads_per_fit: PositiveInt
    cv_jobs: PositiveInt
    parallel_backend: Literal["threading", "loky"]
    engineered_features: bool
    cv: CVParams
    selection_metric: Literal["roc_auc", "accuracy"]
    preference: list[str]
    candidates: dict[str, CandidateSpec] = Field(min_length=1)
    ensembles: dict[str, EnsembleSpec]
    baseline: BaselineParams | None = None
    threshold: ThresholdParams
    decisions: DecisionParams
    feature_importance: FeatureImportanceParams
    quality_gate: dict[GateKey, Fraction]
    promotion: PromotionParams

    @field_validator("ensembles", "quality_gate", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _check_names(self) -> TrainingParams:
        if clashes := sorted(set(self.ensembles) & set(self.candidates)):
            raise ValueError(f"ensembles {clashes} reuse candidate names; give them their own")
        for name, ensemble in self.ensembles.items():
            if unknown := sorted(set(ensemble.members) - set(self.candidates)):
                raise ValueError(f"ensembles.{name}.members {unknown} are not candidates")
        names = {*self.candidates, *self.ensembles}
        if unknown := [name for name in self.preference if name not in names]:
            raise ValueError(
                f"preference names {unknown}, which are neither candidates nor ensembles"
            )
        return self

    @classmethod
    def parse(cls, training: TrainingParams | Mapping[str, Any]) -> TrainingParams:
        """``training`` as a ``TrainingParams`` (returned as is when it already is one).

        Raises:
            ValueError: Naming each bad key (``training.<path>``), its value and the fix.
        """
        if isinstance(training, cls):
            return training
        try:
            return cls.model_validate(dict(training))
        except ValidationError as error:
            raise ValueError(describe_errors("training", error, CONFIG_FILE)) from None


def parse_training_parameters(training: Mapping[str, Any]) -> TrainingParams:
    """Node: the ``training`` parameters, validated once for the whole run."""
    return TrainingParams.parse(training)
