"""Settings of the HTTP service, read from ``NETWORK_SECURITY_*`` environment variables.

Every limit the service enforces lives here, so an operator changes it without touching code::

    NETWORK_SECURITY_MAX_UPLOAD_BYTES=20000000 NETWORK_SECURITY_MAX_ROWS=50000 \\
        network-security serve

The project path (where ``conf/`` and ``data/06_models`` are) defaults to the Kedro project that
contains the working directory, else the one this package was installed from.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "NETWORK_SECURITY_"
API_TOKEN_VARIABLE = f"{ENV_PREFIX}API_TOKEN"
MIN_API_TOKEN_LENGTH = 16


def _is_kedro_project(path: Path) -> bool:
    """True when ``path`` holds a pyproject.toml with a ``[tool.kedro]`` table."""
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        return "kedro" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False


def find_project_path(start: Path | None = None) -> Path:
    """The Kedro project containing ``start`` (default: the working directory).

    Falls back to the source tree this package lives in (``src/network_security/service`` ->
    the project root), then to the working directory itself.
    """
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if _is_kedro_project(candidate):
            return candidate
    source_root = Path(__file__).resolve().parents[3]
    if _is_kedro_project(source_root):
        return source_root
    return start


class ServiceSettings(BaseSettings):
    """Configuration of the service; each field maps to ``NETWORK_SECURITY_<FIELD>``."""

    # hide_input_in_errors: a refused setting (the API token) is never echoed in the error
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True
    )

    project_path: Path = Field(
        default_factory=find_project_path,
        description="Kedro project root: conf/ is read from here, models are found here.",
    )
    kedro_env: str | None = Field(
        default=None, description="Kedro configuration environment (default: local over base)."
    )
    model_path: Path = Field(
        default=Path("data/06_models/champion.pkl"),
        description="The local cache of the champion (the registry alias 'champion' decides "
        "which version it holds), relative to the project path.",
    )
    champion_refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the service asks the model registry for a newly promoted champion.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest CSV upload or JSON body, in bytes."
    )
    max_rows: int = Field(default=10_000, gt=0, description="Most rows (or records) per request.")
    max_columns: int = Field(default=200, gt=0, description="Most columns per CSV or record.")
    max_concurrent_predictions: int = Field(
        default=2,
        gt=0,
        description="Most /predict requests read and scored at once (their bodies in memory); "
        "others wait their turn without being read.",
    )
    prediction_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a /predict request waits for its turn before a 503 (retry later).",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a request body may take to arrive before a 408.",
    )

    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, e.g. ["https://soc.example"].',
    )
    cors_allow_credentials: bool = False

    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /train; when unset, training over HTTP is disabled (403).",
    )
    training_pipeline: str = "training"
    training_runtime_params: dict[str, str] = Field(
        default_factory=dict,
        description="Runtime parameters passed to the training run (kedro run --params).",
    )
    training_timeout_seconds: float = Field(default=3600.0, gt=0)
    training_candidate_dataset: str = Field(
        default="candidate_model",
        description="Catalog entry of the model a training run trained (for a job's metrics).",
    )
    training_decision_dataset: str = Field(
        default="promotion_decision",
        description="Catalog entry of a training run's promotion decision (for a job's reason).",
    )
    training_jobs_kept: int = Field(default=50, gt=0, description="Finished jobs remembered.")

    @field_validator("api_token", mode="before")
    @classmethod
    def _check_token(cls, value: object) -> object:
        """The token without surrounding blanks; an empty one disables training like an unset
        one, and one shorter than ``MIN_API_TOKEN_LENGTH`` characters is refused."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        if len(value) < MIN_API_TOKEN_LENGTH:
            raise ValueError(
                f"{API_TOKEN_VARIABLE} is {len(value)} characters long; a token that guards "
                f"training needs at least {MIN_API_TOKEN_LENGTH}. Make one with `python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'`, or unset the variable to "
                "disable training over HTTP"
            )
        return value

    @model_validator(mode="after")
    def _check_cors(self) -> ServiceSettings:
        """Refuse a wildcard origin together with credentials (browsers would send cookies)."""
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError(
                "NETWORK_SECURITY_CORS_ORIGINS contains '*' while "
                "NETWORK_SECURITY_CORS_ALLOW_CREDENTIALS is true: list the allowed origins "
                "explicitly, or turn credentials off."
            )
        return self

    @property
    def resolved_model_path(self) -> Path:
        """The champion path, made absolute against the project path."""
        path = self.model_path.expanduser()
        return path if path.is_absolute() else self.project_path / path


def settings_error_message(error: ValidationError) -> str:
    """What is wrong with the service's settings, one line per setting (inputs not shown)."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in item["loc"])
        setting = f"{ENV_PREFIX}{name.upper()}" if name else "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(message if message.startswith(ENV_PREFIX) else f"{setting}: {message}")
    return "Invalid service settings: " + "; ".join(lines) + "."
