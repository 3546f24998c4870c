"""Idempotent writes into Snowflake through the (synchronous) Python connector.

The loader runs no DDL: ``migrate`` (``gong-webhook-loader migrate``, run by an admin role or a
Job) creates schema and tables; every new loader connection only checks, with one query on
INFORMATION_SCHEMA.TABLES, that the tables it writes exist, and reports any that do not as
``MissingTables``.

Callers run these methods in a worker thread. Every write is a single multi-row MERGE whose
source is ``SELECT … PARSE_JSON(columnN) … FROM VALUES (…), (…)``: real Snowflake refuses
PARSE_JSON inside VALUES, and a MERGE whose source holds a key twice fails, so callers hand
over batches that are already de-duplicated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sf_errors

from webhook_app.keys import load_private_key
from webhook_app.settings import AppSettings

log = logging.getLogger(__name__)

EVENTS_TABLE = "GONG_WEBHOOK_EVENTS"
TRANSCRIPTS_TABLE = "GONG_CALL_TRANSCRIPTS"
EXTENSIVE_TABLE = "GONG_CALLS_EXTENSIVE"

# No PRIMARY KEY: Snowflake does not enforce one on standard tables (only NOT NULL), so declaring it
# promises nothing, and the DuckDB-based fakesnow the tests use would enforce it and turn a duplicate
# the loader sent into a refused statement instead of the second row Snowflake would keep. The
# MERGE keyed by EVENT_ID / CALL_ID is what keeps the keys unique.
_EVENTS_DDL = f"""CREATE TABLE IF NOT EXISTS {{fq}}.{EVENTS_TABLE} (
  EVENT_ID VARCHAR NOT NULL,
  CALL_ID VARCHAR NOT NULL,
  EVENT_SCOPE VARCHAR,
  IS_TEST BOOLEAN,
  TITLE VARCHAR,
  STARTED TIMESTAMP_TZ,
  DURATION_SECONDS NUMBER(38,0),
  PRIMARY_USER_ID VARCHAR,
  STREAM_ENTRY_ID VARCHAR,
  RECEIVED_AT TIMESTAMP_TZ,
  LOADED_AT TIMESTAMP_TZ,
  PAYLOAD VARIANT
)"""

_TRANSCRIPTS_DDL = f"""CREATE TABLE IF NOT EXISTS {{fq}}.{TRANSCRIPTS_TABLE} (
  CALL_ID VARCHAR NOT NULL,
  FETCHED_AT TIMESTAMP_TZ,
  TRANSCRIPT VARIANT
)"""

_EXTENSIVE_DDL = f"""CREATE TABLE IF NOT EXISTS {{fq}}.{EXTENSIVE_TABLE} (
  CALL_ID VARCHAR NOT NULL,
  FETCHED_AT TIMESTAMP_TZ,
  DATA VARIANT
)"""

TABLE_DDL: dict[str, str] = {
    EVENTS_TABLE: _EVENTS_DDL, TRANSCRIPTS_TABLE: _TRANSCRIPTS_DDL, EXTENSIVE_TABLE: _EXTENSIVE_DDL,
}


class SinkError(Exception):
    """A Snowflake statement failed. ``transient`` tells whether retrying the same rows may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class MissingTables(SinkError):
    """Tables the loader writes do not exist (or its role cannot see them). Not transient: only
    ``gong-webhook-loader migrate`` or a grant fixes it, so callers hold their work and report it
    instead of retrying fast or dead-lettering events."""

    def __init__(self, fq_schema: str, missing: Sequence[str]) -> None:
        super().__init__(
            f"Snowflake tables missing or not visible to the loader's role in {fq_schema}: {', '.join(missing)}; "
            "run `gong-webhook-loader migrate` with a role that may create them, or grant the loader's role "
            "access (docs/runbook.md#gongwebhooksnowflaketablesmissing)",
            transient=False,
        )
        self.missing = list(missing)


def required_tables(settings: AppSettings) -> list[str]:
    """The tables this configuration writes to."""
    tables = [EVENTS_TABLE]
    if settings.gong_enrichment_enabled:
        tables.append(TRANSCRIPTS_TABLE)
        if settings.gong_enrichment_extensive:
            tables.append(EXTENSIVE_TABLE)
    return tables


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    call_id: str
    event_scope: str
    is_test: bool
    title: str | None
    started: str | None
    duration_seconds: int | None
    primary_user_id: str | None
    stream_entry_id: str
    received_at: str
    payload_json: str


@dataclass(frozen=True, slots=True)
class TranscriptRow:
    call_id: str
    fetched_at: str
    transcript_json: str


@dataclass(frozen=True, slots=True)
class ExtensiveRow:
    """One call object of /v2/calls/extensive (metaData, parties, content, interaction, …)."""

    call_id: str
    fetched_at: str
    data_json: str


# Refusals that concern the whole table or session rather than particular rows: a dropped
# table, a revoked grant, a suspended warehouse, an expired session. Treating them as row errors
# would push every event into the dead-letter stream; instead the loader waits and reconnects,
# and the new connection's table check reports a dropped table as MissingTables.
# 630: "Statement reached its statement or warehouse timeout ... and was canceled": the session timeouts
# this module sets (see _connect_kwargs) must hold the batch, not bisect it towards the DLQ.
_SYSTEMIC_ERRNOS = frozenset({2003, 3001, 606, 604, 630, 390112, 390114})


def _classify(exc: Exception) -> SinkError:
    # ProgrammingError/DataError/IntegrityError mean Snowflake parsed the request and refused
    # it: the same rows will fail again. Everything else (network, login, server down) may pass
    # on a retry. The message keeps the Snowflake error code and text.
    transient = not isinstance(
        exc, sf_errors.ProgrammingError | sf_errors.DataError | sf_errors.IntegrityError
    ) or getattr(exc, "errno", None) in _SYSTEMIC_ERRNOS
    text = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
    return SinkError(f"{type(exc).__name__}: {text}", transient=transient)


class SnowflakeSink:
    def __init__(self, settings: AppSettings, tables: Sequence[str] | None = None) -> None:
        self._settings = settings
        self._conn: Any = None
        self._fq = f"{settings.snowflake_database}.{settings.snowflake_schema}"
        self._tables = list(tables) if tables is not None else required_tables(settings)

    def _connect_kwargs(self) -> dict[str, Any]:
        s = self._settings
        assert s.snowflake_account is not None and s.snowflake_user is not None
        kwargs: dict[str, Any] = {
            "account": s.snowflake_account.get_secret_value(),
            "user": s.snowflake_user.get_secret_value(),
            "warehouse": s.snowflake_warehouse,
            "database": s.snowflake_database,
            "schema": s.snowflake_schema,
            "paramstyle": "qmark",  # server-side binding: payloads travel as binds, not SQL text
            "autocommit": True,
            "login_timeout": s.snowflake_timeout_seconds,
            "network_timeout": s.snowflake_timeout_seconds,
            "socket_timeout": s.snowflake_timeout_seconds,
            # The server, not only the client, gives up on a statement after the timeout: a loader
            # that dies mid-MERGE leaves a statement that may still run server-side, and its entries
            # are re-claimed only after LOADER_CLAIM_IDLE_MS, which settings require to exceed the
            # longest such statement (queued + running).
            "session_parameters": {
                "STATEMENT_TIMEOUT_IN_SECONDS": s.snowflake_timeout_seconds,
                "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS": s.snowflake_timeout_seconds,
            },
            "application": "gong-webhook-operator",
        }
        if s.snowflake_private_key is not None:
            kwargs["private_key"] = load_private_key(s.snowflake_private_key.get_secret_value())
        elif s.snowflake_password is not None:
            kwargs["password"] = s.snowflake_password.get_secret_value()
        if s.snowflake_role:
            kwargs["role"] = s.snowflake_role
        if s.snowflake_host:
            kwargs["host"] = s.snowflake_host
        if s.snowflake_port:
            kwargs["port"] = s.snowflake_port
        kwargs["protocol"] = s.snowflake_protocol
        return kwargs

    def _open(self) -> Any:
        try:
            return snowflake.connector.connect(**self._connect_kwargs())
        except Exception as exc:
            err = _classify(exc)
            # A refused login is as retryable as a network error: credentials may be rotated.
            raise SinkError(str(err), transient=True) from None

    def _cursor(self) -> Any:
        if self._conn is None:
            conn = self._open()
            try:
                missing = self._missing_tables(conn.cursor(), self._tables)
            except Exception as exc:
                _close(conn)
                raise SinkError(str(_classify(exc)), transient=True) from None
            if missing:
                # Closed so the next attempt checks again on a fresh connection (after a migrate or
                # a grant, which a cached session might not see).
                _close(conn)
                raise MissingTables(self._fq, missing)
            self._conn = conn
        return self._conn.cursor()

    def _missing_tables(self, cur: Any, tables: Sequence[str]) -> list[str]:
        # INFORMATION_SCHEMA lists only the tables the session's role has a privilege on, so a
        # missing grant shows up here too. Unquoted identifiers are stored upper-case.
        placeholders = ",".join("?" * len(tables))
        try:
            cur.execute(
                f"SELECT TABLE_NAME FROM {self._settings.snowflake_database}.INFORMATION_SCHEMA.TABLES "  # noqa: S608
                f"WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({placeholders})",
                [self._settings.snowflake_schema.upper(), *tables],
            )
        except sf_errors.ProgrammingError as exc:
            # 2003: "Database ... does not exist or not authorized": no table of it can be reached
            # either, and waiting will not change that; anything else is the caller's to classify.
            if getattr(exc, "errno", None) == 2003:
                return list(tables)
            raise
        found = {str(row[0]).upper() for row in cur.fetchall()}
        return [t for t in tables if t not in found]

    def check_tables(self) -> None:
        """Raise MissingTables unless every table this configuration writes exists (no DDL)."""
        self._run(lambda cur: None)

    def migrate(self) -> list[str]:
        """Create what is missing of schema and tables (all three tables, whatever the settings) and
        return what was created. Run by ``gong-webhook-loader migrate`` with a role that may create
        them; the loader itself never calls this. Only a missing object costs a CREATE statement,
        so re-running it on an existing schema needs no CREATE privilege at all."""
        conn = self._open()
        created: list[str] = []
        s = self._settings
        try:
            cur = conn.cursor()
            try:
                cur.execute(
                    f"SELECT SCHEMA_NAME FROM {s.snowflake_database}.INFORMATION_SCHEMA.SCHEMATA "  # noqa: S608
                    "WHERE SCHEMA_NAME = ?",
                    [s.snowflake_schema.upper()],
                )
                schema_exists = bool(cur.fetchall())
            except sf_errors.ProgrammingError:
                # The database itself is missing (or invisible to this role). Creating a database is
                # an account-level privilege that is normally the DBA's; this is a fallback for
                # fresh development accounts and local stand-ins.
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {s.snowflake_database}")
                created.append(s.snowflake_database)
                schema_exists = False
            if not schema_exists:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self._fq}")
                created.append(self._fq)
            for table in self._missing_tables(cur, list(TABLE_DDL)):
                cur.execute(TABLE_DDL[table].format(fq=self._fq))
                created.append(f"{self._fq}.{table}")
        except Exception as exc:
            raise _classify(exc) from None
        finally:
            _close(conn)
        return created

    def _run(self, action: Any) -> Any:
        cur = self._cursor()
        try:
            return action(cur)
        except Exception as exc:
            err = _classify(exc)
            if err.transient:
                self.close()
            raise err from None
        finally:
            try:
                cur.close()
            except Exception:  # noqa: S110 - closing a broken cursor may fail; the error that matters is raised above
                pass

    def merge_events(self, rows: Sequence[EventRow]) -> int:
        if not rows:
            return 0
        values = ",".join(["(?,?,?,?,?,?,?,?,?,?,?)"] * len(rows))
        # The only interpolations are validated identifiers and placeholders; values are bound.
        sql = f"""MERGE INTO {self._fq}.{EVENTS_TABLE} t
USING (
  SELECT column1 AS EVENT_ID, column2 AS CALL_ID, column3 AS EVENT_SCOPE, column4 AS IS_TEST,
         column5 AS TITLE, column6::TIMESTAMP_TZ AS STARTED, column7 AS DURATION_SECONDS,
         column8 AS PRIMARY_USER_ID, column9 AS STREAM_ENTRY_ID, column10::TIMESTAMP_TZ AS RECEIVED_AT,
         PARSE_JSON(column11) AS PAYLOAD
  FROM VALUES {values}
) s
ON t.EVENT_ID = s.EVENT_ID
WHEN NOT MATCHED THEN INSERT
  (EVENT_ID, CALL_ID, EVENT_SCOPE, IS_TEST, TITLE, STARTED, DURATION_SECONDS, PRIMARY_USER_ID,
   STREAM_ENTRY_ID, RECEIVED_AT, LOADED_AT, PAYLOAD)
VALUES
  (s.EVENT_ID, s.CALL_ID, s.EVENT_SCOPE, s.IS_TEST, s.TITLE, s.STARTED, s.DURATION_SECONDS,
   s.PRIMARY_USER_ID, s.STREAM_ENTRY_ID, s.RECEIVED_AT, CURRENT_TIMESTAMP(), s.PAYLOAD)"""  # noqa: S608
        params: list[Any] = []
        for r in rows:
            params.extend((
                r.event_id, r.call_id, r.event_scope, r.is_test, r.title, r.started, r.duration_seconds,
                r.primary_user_id, r.stream_entry_id, r.received_at, r.payload_json,
            ))

        def action(cur: Any) -> int:
            cur.execute(sql, params)
            row = cur.fetchone()
            return int(row[0]) if row else 0

        inserted: int = self._run(action)
        return inserted

    def merge_transcripts(self, rows: Sequence[TranscriptRow]) -> int:
        return self._merge_call_documents(
            TRANSCRIPTS_TABLE, "TRANSCRIPT", [(r.call_id, r.fetched_at, r.transcript_json) for r in rows]
        )

    def merge_extensive(self, rows: Sequence[ExtensiveRow]) -> int:
        return self._merge_call_documents(
            EXTENSIVE_TABLE, "DATA", [(r.call_id, r.fetched_at, r.data_json) for r in rows]
        )

    def _merge_call_documents(self, table: str, column: str, rows: Sequence[tuple[str, str, str]]) -> int:
        """Upsert one JSON document per CALL_ID; ``rows`` must not repeat a call id."""
        if not rows:
            return 0
        values = ",".join(["(?,?,?)"] * len(rows))
        # A document fetched later is at least as complete, so a re-fetch replaces the old one and
        # a call never gets a second row. Table and column are constants of this module.
        sql = f"""MERGE INTO {self._fq}.{table} t
USING (
  SELECT column1 AS CALL_ID, column2::TIMESTAMP_TZ AS FETCHED_AT, PARSE_JSON(column3) AS {column}
  FROM VALUES {values}
) s
ON t.CALL_ID = s.CALL_ID
WHEN MATCHED THEN UPDATE SET FETCHED_AT = s.FETCHED_AT, {column} = s.{column}
WHEN NOT MATCHED THEN INSERT (CALL_ID, FETCHED_AT, {column}) VALUES (s.CALL_ID, s.FETCHED_AT, s.{column})"""  # noqa: S608
        params: list[Any] = [value for row in rows for value in row]

        def action(cur: Any) -> int:
            cur.execute(sql, params)
            return len(rows)

        merged: int = self._run(action)
        return merged

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close(conn)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: S110 - the connection is already broken; dropping it is the point
        pass
