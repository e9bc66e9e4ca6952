"""Settings of the HTTP service: ``NETWORK_SECURITY_<FIELD>`` environment variables
(pydantic-settings; lists and dicts as JSON). The project itself (schema, scoring parameters,
catalog, MLflow store) is read through Kedro's own session (``network_security.service.app``)."""

from __future__ import annotations

from pathlib import Path

from kedro.utils import find_kedro_project
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "NETWORK_SECURITY_"
API_TOKEN_VARIABLE = f"{ENV_PREFIX}API_TOKEN"
MIN_API_TOKEN_LENGTH = 16


def _project_path() -> Path:
    """The Kedro project containing the working directory (else the working directory)."""
    return find_kedro_project(Path.cwd()) or Path.cwd()


class ServiceSettings(BaseSettings):
    """Configuration of the service; each field maps to ``NETWORK_SECURITY_<FIELD>``."""

    # hide_input_in_errors: a refused setting (the API token) is never echoed in the error
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True
    )

    project_path: Path = Field(default_factory=_project_path, description="Kedro project root.")
    kedro_env: str | None = Field(default=None, description="Kedro configuration environment.")
    model_path: Path | None = Field(
        default=None,
        description="The champion's local cache, relative to the project (default: the file of "
        "the catalog entry champion_model).",
    )
    champion_refresh_seconds: float = Field(default=30.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_rows: int = Field(default=10_000, gt=0)
    max_columns: int = Field(default=200, gt=0)
    max_concurrent_predictions: int = Field(default=2, gt=0)
    prediction_wait_seconds: float = Field(default=30.0, gt=0)
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long a request body may take to arrive (408)."
    )
    max_body_bytes_in_flight: int | None = Field(
        default=None,
        gt=0,
        description="Bytes of request bodies held at once by the requests in progress (read, "
        "waiting for a scoring slot or being scored); more is a 503. Default: 16 uploads.",
    )
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="Host names (Host header) the service answers, against DNS rebinding; "
        "'*.example.org' for subdomains. Default: the bind address, localhost and 127.0.0.1 "
        "(list the names clients use when binding 0.0.0.0).",
    )
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    api_token: SecretStr | None = Field(default=None, description="Bearer token for /train.")
    training_pipeline: str = "training"
    training_runtime_params: dict[str, str] = Field(default_factory=dict)
    training_timeout_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("api_token", mode="before")
    @classmethod
    def _check_token(cls, value: object) -> object:
        """Blanks around the token are ignored; an empty one disables training like an unset
        one, and one shorter than ``MIN_API_TOKEN_LENGTH`` characters is refused."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str) or not value.strip():
            return value if not isinstance(value, str) else None
        if len(value := value.strip()) < MIN_API_TOKEN_LENGTH:
            raise ValueError(
                f"{API_TOKEN_VARIABLE} is {len(value)} characters long; a token that guards "
                f"training needs at least {MIN_API_TOKEN_LENGTH}. Make one with `python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'`, or unset the variable to "
                "disable training over HTTP"
            )
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> ServiceSettings:
        """The defaults that follow from other settings."""
        if self.allowed_hosts is None:
            self.allowed_hosts = list(dict.fromkeys([self.host, "localhost", "127.0.0.1"]))
        if self.max_body_bytes_in_flight is None:
            self.max_body_bytes_in_flight = 16 * self.max_upload_bytes
        return self

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


def settings_error_message(error: ValidationError) -> str:
    """What is wrong with the service's settings, one line per setting (inputs not shown)."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in item["loc"])
        setting = f"{ENV_PREFIX}{name.upper()}" if name else "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(message if message.startswith(ENV_PREFIX) else f"{setting}: {message}")
    return "Invalid service settings: " + "; ".join(lines) + "."
