"""Stores the stream writes to: SQLite (embedded default) or Elasticsearch."""

from __future__ import annotations

from matrixwatch.settings import Settings
from matrixwatch.streams.sinks.base import Store


def make_store(settings: Settings) -> Store:
    """Elasticsearch when ``MW_ES_URL`` is set, else the SQLite file under data_dir."""
    if settings.es_url:
        from matrixwatch.streams.sinks.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(
            settings.es_url,
            prefix=settings.es_index_prefix,
            username=settings.es_username,
            password=settings.es_password.get_secret_value() if settings.es_password else None,
            verify_certs=settings.es_verify_certs,
        )
    from matrixwatch.streams.sinks.sqlite import SQLiteStore

    return SQLiteStore(settings.store_path)


__all__ = ["Store", "make_store"]
