"""``MongoDataset``: a Kedro dataset over one MongoDB collection.

Modelled on kedro-datasets' SQL datasets: the client is created lazily on first use and released
with ``release()``; ``_describe`` never shows the URI (it may hold a password); ``preview()`` feeds
kedro-viz; every server call is bounded by timeouts.

Saving is idempotent by a deterministic record key, stored as the document's ``_id``: the
``_id`` index, MongoDB's built-in unique index, makes the server reject a document that is
already stored, and ``insert_many(ordered=False)`` keeps going past such rejections, counting
them as "already stored". Measured on the local server with the real data set, this runs at
bare-insert speed, while a secondary unique index on a ``record_key`` field made inserts 3-4x
slower and one upsert per document about 6x slower. Loading maps ``_id`` back to the key column.

A dataset whose credentials give no URI (``MONGODB_URI`` unset) can be given a URI provider
(``set_uri_provider``), called when it first connects: the project's hook gives it the embedded
server, which thereby starts only when a MongoDB dataset is actually used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview
from pymongo import MongoClient
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

logger = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
DEFAULT_TIMEOUT_MS = 10_000


def redact_uri(uri: str) -> str:
    """The URI with any user name and password replaced by ``***``."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


def _hosts(uri: str) -> str:
    """``host:port`` list of a MongoDB URI, without credentials."""
    if not uri:
        return "(no URI yet)"
    netloc = urlsplit(redact_uri(uri)).netloc
    return netloc.split("@")[-1] or "localhost:27017"


class MongoDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Loads a collection as a DataFrame (without ``_id``); saves a DataFrame idempotently.

    Example catalog entry::

        phishing_records:
          type: network_security.datasets.MongoDataset
          collection: phishing_records
          database: network_security
          key: record_key
          credentials: mongo_credentials   # {uri: ${oc.env:MONGODB_URI}}
    """

    def __init__(  # noqa: PLR0913
        self,
        collection: str,
        database: str,
        credentials: dict[str, Any] | None = None,
        key: str = "record_key",
        query: dict[str, Any] | None = None,
        projection: dict[str, Any] | list[str] | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        batch_size: int = 5_000,
        client_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Declare the collection; nothing connects until the first load, save or exists.

        Args:
            collection: Collection name.
            database: Database name.
            credentials: ``{"uri": "mongodb://user:pass@host:port/"}``; the URI is never logged.
            key: Column identifying a record; stored as ``_id`` (unique), loaded back as ``key``.
            query: Optional filter applied on load.
            projection: Optional projection applied on load (fields to include).
            timeout_ms: Bound for server selection, connecting and each operation.
            batch_size: Documents per ``insert_many`` call.
            client_args: Extra ``MongoClient`` keyword arguments.
            metadata: Free-form metadata (kedro-viz layer, preview args).
        """
        self._uri = (credentials or {}).get("uri") or ""
        self._database = database
        self._collection = collection
        self._key = key
        self._query = dict(query or {})
        self._projection = projection
        self._timeout_ms = int(timeout_ms)
        self._batch_size = int(batch_size)
        self._client_args = dict(client_args or {})
        self._client: MongoClient | None = None
        self._uri_provider: Callable[[], str] | None = None
        self._uri_provided = False
        self.metadata = metadata

    # ------------------------------------------------------------------ connection
    @property
    def _where(self) -> str:
        return (
            f"MongoDB at {_hosts(self._uri)} "
            f"(database '{self._database}', collection '{self._collection}')"
        )

    @property
    def has_uri(self) -> bool:
        """Whether a URI is known (from the credentials, or from the provider once connected)."""
        return bool(self._uri)

    def set_uri_provider(self, provider: Callable[[], str] | None) -> None:
        """Where to get a URI at the first connection when the credentials give none.

        The provider is called only then (it may start a server); the URI it returns is kept
        until ``release()``.
        """
        self._uri_provider = provider

    def _get_collection(self):
        if not self._uri and self._uri_provider is not None:
            self._uri, self._uri_provided = self._uri_provider(), True
        if not self._uri:
            raise DatasetError(
                f"MongoDataset '{self._database}.{self._collection}' has no URI: set MONGODB_URI, "
                "or put 'uri' under the dataset's credentials in conf/local/credentials.yml. "
                "(`kedro run` starts an embedded server when it is unset; for `kedro viz`, "
                "add --include-hooks to get one.)"
            )
        if self._client is None:
            self._client = MongoClient(
                self._uri,
                serverSelectionTimeoutMS=self._timeout_ms,
                connectTimeoutMS=self._timeout_ms,
                socketTimeoutMS=max(self._timeout_ms, 60_000),
                **self._client_args,
            )
        return self._client[self._database][self._collection]

    def _error(self, action: str, exc: Exception) -> DatasetError:
        detail = redact_uri(str(exc)).replace(self._uri, "***")
        if isinstance(exc, OperationFailure) and exc.code in (13, 18):
            hint = "check the user name, password and authSource in MONGODB_URI"
        else:
            hint = (
                "check that the server is running and reachable at that host and port, "
                "and that MONGODB_URI is right"
            )
        return DatasetError(f"Could not {action} {self._where}: {hint}. ({detail})")

    def release(self) -> None:
        """Close the client; the next operation reconnects (asking the provider again)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._uri_provided:
            self._uri, self._uri_provided = "", False

    # ------------------------------------------------------------------ kedro API
    def _describe(self) -> dict[str, Any]:
        return {
            "hosts": _hosts(self._uri),
            "database": self._database,
            "collection": self._collection,
            "key": self._key,
            "query": self._query,
        }

    def _find(self, limit: int = 0) -> pd.DataFrame:
        fields = self._projection
        if isinstance(fields, list):
            fields = dict.fromkeys(fields, 1)
        projection = None
        if fields:
            projection = {("_id" if k == self._key else k): v for k, v in fields.items()}
            projection.setdefault("_id", 0)
        try:
            cursor = self._get_collection().find(self._query, projection, limit=limit)
            documents = list(cursor.sort("_id", 1))  # a stable order: by record key
        except PyMongoError as exc:
            raise self._error("read from", exc) from exc
        frame = pd.DataFrame.from_records(documents)
        if "_id" in frame.columns:
            ids = frame.pop("_id")
            if self._key not in frame.columns:  # documents not written by this dataset keep theirs
                frame.insert(0, self._key, ids)
        return _restore_integers(frame)

    def load(self) -> pd.DataFrame:
        frame = self._find()
        logger.info("Loaded %d records from %s", len(frame), self._where)
        return frame

    def save(self, data: pd.DataFrame) -> None:
        if self._key not in data.columns:
            raise DatasetError(
                f"Cannot save to {self._where}: the data has no '{self._key}' column, which "
                "makes saves idempotent. Add the record key before saving."
            )
        if data[self._key].isna().any() or data[self._key].duplicated().any():
            raise DatasetError(
                f"Cannot save to {self._where}: column '{self._key}' has missing or repeated "
                "values; every record needs its own key."
            )
        collection = self._get_collection()
        documents = _to_documents(data.rename(columns={self._key: "_id"}))
        written: list[Any] = []
        skipped = 0
        try:
            for start in range(0, len(documents), self._batch_size):
                batch = documents[start : start + self._batch_size]
                batch_written, batch_skipped = self._insert_batch(collection, batch, written)
                skipped += batch_skipped
        except Exception:
            self._roll_back(collection, written)
            raise
        logger.info(
            "Saved %d new records to %s (%d already stored)", len(written), self._where, skipped
        )

    def _insert_batch(
        self, collection, batch: list[dict[str, Any]], written: list[Any]
    ) -> tuple[int, int]:
        """Insert one batch, appending the keys it stored to ``written``.

        Returns (documents inserted, documents already stored). Any rejection other than a
        duplicate key raises, and the caller rolls back everything this save wrote.
        """
        try:
            collection.insert_many(batch, ordered=False)
            written.extend(doc["_id"] for doc in batch)
            return len(batch), 0
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            failed = {e["index"] for e in errors}
            written.extend(doc["_id"] for i, doc in enumerate(batch) if i not in failed)
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others:
                raise DatasetError(
                    f"Could not write to {self._where}: {len(others)} documents were rejected "
                    f"(first: {others[0].get('errmsg', 'unknown error')}). "
                    "Nothing of this save was kept."
                ) from exc
            return len(batch) - len(errors), len(errors)
        except PyMongoError as exc:
            raise self._error("write to", exc) from exc

    def _roll_back(self, collection, keys: list[Any]) -> None:
        if not keys:
            return
        try:
            collection.delete_many({"_id": {"$in": keys}})
            logger.warning(
                "Rolled back %d records written by a failed save to %s", len(keys), self._where
            )
        except PyMongoError:
            logger.error(
                "A save to %s failed and %d of its records could not be rolled back; "
                "re-run the same ingestion to complete it (saves are idempotent).",
                self._where,
                len(keys),
            )

    def _exists(self) -> bool:
        try:
            return self._get_collection().find_one(self._query, {"_id": 1}) is not None
        except PyMongoError as exc:
            raise self._error("check", exc) from exc

    def preview(self, nrows: int = 5) -> TablePreview:
        """A few records as a kedro-viz table preview (``{"index", "columns", "data"}``)."""
        return TablePreview(self._find(limit=nrows).to_dict(orient="split"))


def _to_documents(data: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as documents of plain Python values (numpy scalars are not BSON); NA becomes null."""
    columns = list(data.columns)
    values = data.astype(object)
    if data.isna().to_numpy().any():
        values = values.where(data.notna(), None)
    return [dict(zip(columns, row, strict=True)) for row in values.to_numpy().tolist()]


def _restore_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns stored as integers come back as int64, or nullable Int64 where a value is missing."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype == "float64":
            present = series.dropna()
            if len(present) and (present == present.round()).all():
                frame[column] = series.astype("Int64")
    return frame
