"""Custom Kedro datasets of the project."""

from network_security.datasets.mongo_dataset import MongoDataset
from network_security.datasets.optional import OptionalDataset
from network_security.datasets.safe_csv import SafeCSVDataset, neutralise_formulas

__all__ = ["MongoDataset", "OptionalDataset", "SafeCSVDataset", "neutralise_formulas"]
