"""network_security: phishing website detection with Kedro, MongoDB, MLflow and FastAPI."""

__version__ = "0.1.0"
