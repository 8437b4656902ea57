"""The lab's notes application: a plain WSGI app that writes and reads notes in MariaDB.

Gunicorn runs it as `notes_app:application`. Configuration comes from the environment:
DB_HOST, DB_PORT (default 3306), DB_NAME, DB_USER, DB_PASSWORD and APP_HOST_NAME.

    GET  /api/health       200 {"app", "database": true} | 503 {"database": false, "error"}
    POST /api/notes        {"text": "..."} -> 201 {"id", "text", "app"} once COMMIT succeeded
    GET  /api/notes        200 {"count", "latest": [up to 10 newest notes]}
    GET  /api/notes/<id>   200 {"id", "text", "app", "created_at"} | 404

Every answer is JSON and carries `X-App: <APP_HOST_NAME>`, so a client can see which
app server answered. Bad input answers 400, never 500.

`python3 notes_app.py migrate [--env-file app.env]` creates or upgrades the schema and
prints "schema: ok" (nothing to do) or "schema: changed".

The HTTP side (parsing, validation, routing) is pure and talks to a store object;
NotesStore is the only code that touches the database.
"""
import argparse
import json
import os
import re
import socket
import sys
import traceback
from datetime import timezone

try:
    import pymysql
except ImportError:  # the unit tests run without it; NotesStore reports it on first use
    pymysql = None

MAX_TEXT = 1000              # characters, as in the column VARCHAR(1000)
MAX_BODY_BYTES = 64 * 1024   # 1000 characters JSON-escaped as \uXXXX\uXXXX fit easily
LATEST_LIMIT = 10
MAX_ID = 2 ** 63 - 1         # BIGINT's largest value
CONNECT_TIMEOUT_S = 2        # an unreachable database must not hold a worker for long
QUERY_TIMEOUT_S = 5          # also bounds the wait for the server's greeting after connect
MIGRATION_LOCK_TIMEOUT_S = 30


class StoreError(Exception):
    """The database could not be reached or refused the operation."""


# ---------------------------------------------------------------------------
# The database side
# ---------------------------------------------------------------------------

# Append new migrations at the end; never edit one that has shipped. MariaDB commits
# DDL implicitly, so each statement must be safe to run again (IF NOT EXISTS...) in
# case the process died between the DDL and the schema_version row.
MIGRATIONS = [
    (1, "create the notes table", [
        """CREATE TABLE IF NOT EXISTS notes (
               id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
               `text` VARCHAR(1000) NOT NULL,
               app VARCHAR(64) NOT NULL,
               created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
           ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    ]),
]

SCHEMA_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL PRIMARY KEY,
    description VARCHAR(200) NOT NULL,
    applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


class NotesStore:
    """All database access. One connection per call: simple and correct with sync workers."""

    def __init__(self, host=None, port="3306", database=None, user=None, password=None):
        self.host, self.port, self.database = host, port, database
        self.user, self.password = user, password

    @classmethod
    def from_env(cls, environ):
        return cls(host=environ.get("DB_HOST"), port=environ.get("DB_PORT") or "3306",
                   database=environ.get("DB_NAME"), user=environ.get("DB_USER"),
                   password=environ.get("DB_PASSWORD"))

    def _connect(self):
        missing = [name for name, value in (("DB_HOST", self.host), ("DB_NAME", self.database),
                                            ("DB_USER", self.user)) if not value]
        if missing:
            raise StoreError(f"not configured: {', '.join(missing)} not set")
        if pymysql is None:
            raise StoreError("python3-pymysql is not installed")
        try:
            port = int(self.port)
        except ValueError:
            raise StoreError(f"DB_PORT={self.port!r} is not a port number")
        try:
            return pymysql.connect(
                host=self.host, port=port, user=self.user, password=self.password or "",
                database=self.database, charset="utf8mb4", autocommit=False,
                connect_timeout=CONNECT_TIMEOUT_S, read_timeout=QUERY_TIMEOUT_S,
                write_timeout=QUERY_TIMEOUT_S, cursorclass=pymysql.cursors.DictCursor,
                # TIMESTAMP columns are stored in UTC; read them back in UTC.
                init_command="SET time_zone = '+00:00'")
        except pymysql.MySQLError as exc:
            raise StoreError(f"cannot connect to {self.host}:{port}: {_mysql_message(exc)}")

    def _run(self, work):
        """Run work(conn, cursor) on a fresh connection; MySQL errors become StoreError."""
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                return work(conn, cursor)
        except pymysql.MySQLError as exc:
            raise StoreError(_mysql_message(exc))
        finally:
            _close_quietly(conn)

    def ping(self):
        self._run(lambda conn, cur: cur.execute("SELECT 1"))

    def add_note(self, text, app):
        """Insert one note and return its id; returns only once COMMIT succeeded."""
        def work(conn, cur):
            cur.execute("INSERT INTO notes (`text`, app) VALUES (%s, %s)", (text, app))
            note_id = cur.lastrowid
            conn.commit()
            return note_id
        return self._run(work)

    def get_note(self, note_id):
        def work(conn, cur):
            cur.execute("SELECT id, `text`, app, created_at FROM notes WHERE id = %s", (note_id,))
            row = cur.fetchone()
            conn.rollback()
            return _note_from_row(row) if row else None
        return self._run(work)

    def latest_notes(self, limit=LATEST_LIMIT):
        """(count, newest notes); both read in one transaction, so they agree."""
        def work(conn, cur):
            cur.execute("SELECT COUNT(*) AS n FROM notes")
            count = cur.fetchone()["n"]
            cur.execute("SELECT id, `text`, app, created_at FROM notes "
                        "ORDER BY id DESC LIMIT %s", (limit,))
            rows = cur.fetchall()
            conn.rollback()
            return count, [_note_from_row(row) for row in rows]
        return self._run(work)

    def migrate(self):
        """Apply pending migrations; return the list of (version, description) applied."""
        return self._run(_apply_migrations)

    def pending_migrations(self):
        """The (version, description) of migrations not applied yet; changes nothing."""
        def work(conn, cur):
            cur.execute("SELECT COUNT(*) AS n FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name = 'schema_version'")
            current = 0
            if cur.fetchone()["n"]:
                cur.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
                current = cur.fetchone()["v"]
            conn.rollback()
            return [(v, d) for v, d, _ in MIGRATIONS if v > current]
        return self._run(work)


def _apply_migrations(conn, cur):
    # Two app hosts may migrate at the same moment: a named lock serialises them.
    cur.execute("SELECT GET_LOCK('halab_notes_migrate', %s) AS got", (MIGRATION_LOCK_TIMEOUT_S,))
    if cur.fetchone()["got"] != 1:
        raise StoreError("another migration holds the lock; try again")
    try:
        cur.execute(SCHEMA_VERSION_TABLE)
        cur.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        current = cur.fetchone()["v"]
        applied = []
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                cur.execute(statement)
            cur.execute("INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                        (version, description))
            conn.commit()
            applied.append((version, description))
        return applied
    finally:
        cur.execute("DO RELEASE_LOCK('halab_notes_migrate')")


def _note_from_row(row):
    created = row["created_at"]
    if created is not None and hasattr(created, "isoformat"):
        created = created.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds")
    return {"id": row["id"], "text": row["text"], "app": row["app"], "created_at": created}


def _mysql_message(exc):
    args = getattr(exc, "args", ())
    if len(args) >= 2:
        return f"MySQL error {args[0]}: {args[1]}"
    return str(exc) or exc.__class__.__name__


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:
        pass


# ---------------------------------------------------------------------------
# The HTTP side: pure functions of the request and the store
# ---------------------------------------------------------------------------

class HttpError(Exception):
    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, list(headers)


REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}

NOTE_PATH = re.compile(r"/api/notes/([^/]+)")      # used with fullmatch: "$" would
POSITIVE_INT = re.compile(r"[1-9][0-9]{0,18}")     # also accept a trailing newline


def parse_note_id(raw):
    if not POSITIVE_INT.fullmatch(raw) or int(raw) > MAX_ID:
        raise HttpError(400, f"note id must be a positive integer, got {raw[:40]!r}")
    return int(raw)


def read_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "invalid Content-Length")
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def parse_note_text(body):
    """The validated `text` of a POST body, or HttpError(400)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "body must be JSON, e.g. {\"text\": \"hello\"}")
    if not isinstance(data, dict):
        raise HttpError(400, "body must be a JSON object with a \"text\" field")
    text = data.get("text")
    if not isinstance(text, str):
        raise HttpError(400, "\"text\" is required and must be a string")
    if not text.strip():
        raise HttpError(400, "\"text\" must not be empty")
    if len(text) > MAX_TEXT:
        raise HttpError(400, f"\"text\" is longer than {MAX_TEXT} characters")
    try:
        text.encode("utf-8")  # JSON may carry lone surrogates ("\ud800") MySQL cannot store
    except UnicodeEncodeError:
        raise HttpError(400, "\"text\" is not valid Unicode")
    return text


def make_app(store, host_name):
    """The WSGI application, answering for `host_name` and using `store` for the data."""

    def health(environ):
        try:
            store.ping()
        except StoreError as exc:
            return 503, {"app": host_name, "database": False, "error": str(exc)}
        return 200, {"app": host_name, "database": True}

    def create_note(environ):
        text = parse_note_text(read_body(environ))
        note_id = store.add_note(text, host_name)
        return 201, {"id": note_id, "text": text, "app": host_name}

    def list_notes(environ):
        count, latest = store.latest_notes(LATEST_LIMIT)
        return 200, {"count": count, "latest": latest}

    def show_note(environ, raw_id):
        note = store.get_note(parse_note_id(raw_id))
        if note is None:
            raise HttpError(404, f"no note with id {raw_id}")
        return 200, note

    fixed_routes = {
        "/api/health": {"GET": health},
        "/api/notes": {"GET": list_notes, "POST": create_note},
    }

    def route(environ):
        """(handler, args) for the request, or HttpError 404/405."""
        path, method = environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD", "GET")
        note_path = NOTE_PATH.fullmatch(path)
        if path in fixed_routes:
            handlers, args = fixed_routes[path], ()
        elif note_path:
            handlers, args = {"GET": show_note}, (note_path.group(1),)
        else:
            raise HttpError(404, f"no such path: {path[:100]}")
        allowed = sorted(set(handlers) | ({"HEAD"} if "GET" in handlers else set()))
        if method not in allowed:
            raise HttpError(405, f"method {method} not allowed on {path[:100]}",
                            [("Allow", ", ".join(allowed))])
        return handlers["GET" if method == "HEAD" else method], args

    def application(environ, start_response):
        extra_headers = []
        try:
            handler, args = route(environ)
            status, payload = handler(environ, *args)
        except HttpError as exc:
            status, payload, extra_headers = exc.status, {"error": exc.message}, exc.headers
        except StoreError as exc:
            status, payload = 503, {"error": f"database unavailable: {exc}", "app": host_name}
        except Exception:
            print(traceback.format_exc(), file=environ.get("wsgi.errors", sys.stderr))
            status, payload = 500, {"error": "internal error"}
        body = respond(start_response, status, payload, host_name, extra_headers)
        # HEAD: the headers of the GET answer (Content-Length included), no body.
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else body

    return application


def respond(start_response, status, payload, host_name, extra_headers=()):
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n"
    headers = [("Content-Type", "application/json; charset=utf-8"),
               ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"),
               ("X-App", host_name)] + list(extra_headers)
    start_response(f"{status} {REASONS.get(status, 'Unknown')}", headers)
    return [body]


def app_host_name(environ):
    return environ.get("APP_HOST_NAME") or socket.gethostname()


# What Gunicorn imports. Building it reads the environment but opens no connection.
application = make_app(NotesStore.from_env(os.environ), app_host_name(os.environ))


# ---------------------------------------------------------------------------
# Command line: python3 notes_app.py migrate [--env-file FILE]
# ---------------------------------------------------------------------------

def read_env_file(path):
    """KEY=VALUE lines (systemd EnvironmentFile style, without escapes) as a dict."""
    values = {}
    with open(path, encoding="utf-8") as env_file:
        for line in env_file:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def migrate_command(environ, check_only=False):
    store = NotesStore.from_env(environ)
    try:
        applied = store.pending_migrations() if check_only else store.migrate()
    except StoreError as exc:
        print(f"schema: error: {exc}", file=sys.stderr)
        return 1
    for version, description in applied:
        verb = "pending" if check_only else "applied"
        print(f"{verb} migration {version}: {description}", file=sys.stderr)
    print("schema: changed" if applied else "schema: ok")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="notes_app.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--env-file", help="read DB_* settings from this file (e.g. app.env)")
    migrate.add_argument("--check", action="store_true",
                         help="only say whether migrations are pending (schema: changed) or not")
    args = parser.parse_args(argv)

    environ = dict(os.environ)
    if args.env_file:
        try:
            environ.update(read_env_file(args.env_file))
        except OSError as exc:
            print(f"schema: error: cannot read {args.env_file}: {exc.strerror}", file=sys.stderr)
            return 1
    return migrate_command(environ, check_only=args.check)


if __name__ == "__main__":
    sys.exit(main())
