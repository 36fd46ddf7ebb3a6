"""Which engine functions a query may invoke, and what invoking them means.

Security: ``CALL`` is an allow-list: only catalog functions that read this
graph's own schema pass; the file readers (``read_csv_*``, ``read_parquet``,
``read_npy`` crash the engine; ``read_pandas`` reaches into the calling
Python frames), settings (``current_setting`` reveals server paths), storage
internals, projected graphs and extension catalogs are refused. Functions in
expressions are a deny-list, because the engine's 224 scalar functions are
pure except the ones named here (reviewed against ``CALL show_functions()``
of 0.22); a table function named in an expression is refused the same way it
would be under ``CALL``.
"""

from __future__ import annotations

from typing import Final

#: Table functions a ``CALL`` may invoke; upper-case like the engine's catalog.
CATALOG_FUNCTIONS: Final = frozenset(
    {
        "CATALOG_VERSION",
        "DB_VERSION",
        "SHOW_CONNECTION",
        "SHOW_FUNCTIONS",
        "SHOW_INDEXES",
        "SHOW_MACROS",
        "SHOW_SEQUENCES",
        "SHOW_TABLES",
        "SHOW_WARNINGS",
        "STORAGE_VERSION",
        "TABLE_INFO",
    }
)

#: Functions that read or write server files (or the caller's memory).
FILE_FUNCTIONS: Final = frozenset(
    {
        "COPY_CSV",
        "COPY_PARQUET",
        "FILE_INFO",
        "READ_CSV_PARALLEL",
        "READ_CSV_SERIAL",
        "READ_NPY",
        "READ_PANDAS",
        "READ_PARQUET",
    }
)

#: Scalar functions that change data.
WRITE_FUNCTIONS: Final = frozenset({"NEXTVAL"})

#: Scalar functions that change session state.
SESSION_FUNCTIONS: Final = frozenset({"SETSEED"})

#: The other table functions of 0.22 (settings, storage internals, projected
#: graphs, extension catalogs): never allowed, in ``CALL`` or expressions.
ADMIN_TABLE_FUNCTIONS: Final = frozenset(
    {
        "BM_INFO",
        "CLEAR_WARNINGS",
        "CURRENT_SETTING",
        "DISK_INFO",
        "DISK_SIZE_INFO",
        "DROP_PROJECTED_GRAPH",
        "FSM_INFO",
        "PROJECTED_GRAPH_INFO",
        "PROJECT_GRAPH",
        "PROJECT_GRAPH_CYPHER",
        "SHOW_ATTACHED_DATABASES",
        "SHOW_GRAPHS",
        "SHOW_LOADED_EXTENSIONS",
        "SHOW_OFFICIAL_EXTENSIONS",
        "SHOW_PROJECTED_GRAPHS",
        "STATS_INFO",
        "STORAGE_INFO",
        "_CACHE_ARRAY_COLUMN_LOCALLY",
    }
)
