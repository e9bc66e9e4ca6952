"""Custom Kedro datasets of the project."""

from network_security.datasets.mongo_dataset import MongoDataset
from network_security.datasets.optional import OptionalDataset

__all__ = ["MongoDataset", "OptionalDataset"]
