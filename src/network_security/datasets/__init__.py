"""Custom Kedro datasets of the project.

The Dask datasets live in ``network_security.datasets.dask_datasets`` and are imported only
when the catalog uses them (the pandas engine never imports Dask).
"""

from network_security.datasets.engine import EngineDataset
from network_security.datasets.mongo_dataset import MongoDataset
from network_security.datasets.optional import OptionalDataset
from network_security.datasets.safe_csv import SafeCSVDataset, neutralise_formulas

__all__ = [
    "EngineDataset",
    "MongoDataset",
    "OptionalDataset",
    "SafeCSVDataset",
    "neutralise_formulas",
]
