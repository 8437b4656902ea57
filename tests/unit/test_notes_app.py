"""The notes app's HTTP side: routing, validation, status codes and headers, with a fake store."""
import io
import json

import pytest

import notes_app
from notes_app import MAX_TEXT, StoreError, make_app


class FakeStore:
    """Records calls; `fail` makes every call raise StoreError like an unreachable database."""

    def __init__(self, fail=False):
        self.fail = fail
        self.notes = {}
        self.events = []

    def _check(self):
        if self.fail:
            raise StoreError("cannot connect to 192.0.2.1:3306: timed out")

    def ping(self):
        self._check()

    def add_note(self, text, app):
        self._check()
        note_id = len(self.notes) + 1
        self.notes[note_id] = {"id": note_id, "text": text, "app": app,
                               "created_at": "2024-01-02T03:04:05.678+00:00"}
        self.events.append("commit")
        return note_id

    def get_note(self, note_id):
        self._check()
        return self.notes.get(note_id)

    def latest_notes(self, limit):
        self._check()
        newest = sorted(self.notes.values(), key=lambda n: n["id"], reverse=True)
        return len(self.notes), newest[:limit]


class Response:
    def __init__(self, status, headers, body):
        self.status = int(status.split()[0])
        self.status_line = status
        self.headers = dict(headers)
        self.body = body
        self.json = json.loads(body)


def call(app, method, path, body=None, raw=None, content_length=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(data)) if content_length is None else content_length,
        "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
    }
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, headers

    chunks = app(environ, start_response)
    return Response(captured["status"], captured["headers"], b"".join(chunks))


def call_head(app, path):
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "HEAD", "PATH_INFO": path, "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": io.StringIO()}
    body = b"".join(app(environ, start_response))
    return captured["status"], captured["headers"], body


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def app(store):
    return make_app(store, "app1")


# --- health -----------------------------------------------------------------

def test_health_ok(app):
    response = call(app, "GET", "/api/health")
    assert response.status == 200
    assert response.json == {"app": "app1", "database": True}
    assert response.headers["X-App"] == "app1"
    assert response.headers["Content-Type"].startswith("application/json")


def test_health_reports_unreachable_database():
    response = call(make_app(FakeStore(fail=True), "app2"), "GET", "/api/health")
    assert response.status == 503
    assert response.json["database"] is False
    assert response.json["app"] == "app2"
    assert "timed out" in response.json["error"]
    assert response.headers["X-App"] == "app2"


# --- writing ----------------------------------------------------------------

def test_create_note_answers_201_with_id_text_and_app(app, store):
    response = call(app, "POST", "/api/notes", {"text": "hello"})
    assert response.status == 201
    assert response.json == {"id": 1, "text": "hello", "app": "app1"}
    assert store.notes[1]["text"] == "hello"
    assert response.headers["X-App"] == "app1"


def test_create_note_answers_only_after_the_commit_returned():
    order = []

    class CommitThenAnswer(FakeStore):
        def add_note(self, text, app):
            note_id = super().add_note(text, app)
            order.append("commit returned")
            return note_id

    def start_response(status, headers):
        order.append(f"answer {status}")

    app = make_app(CommitThenAnswer(), "app1")
    data = b'{"text": "x"}'
    app({"REQUEST_METHOD": "POST", "PATH_INFO": "/api/notes", "CONTENT_LENGTH": str(len(data)),
         "wsgi.input": io.BytesIO(data), "wsgi.errors": io.StringIO()}, start_response)
    assert order == ["commit returned", "answer 201 Created"]


def test_failed_commit_answers_503_not_201():
    class CommitFails(FakeStore):
        def add_note(self, text, app):
            raise StoreError("MySQL error 2013: Lost connection to server during query")

    response = call(make_app(CommitFails(), "app1"), "POST", "/api/notes", {"text": "x"})
    assert response.status == 503
    assert "Lost connection" in response.json["error"]
    assert response.headers["X-App"] == "app1"


def test_unicode_text_is_kept(app, store):
    response = call(app, "POST", "/api/notes", {"text": "héllo 🌍"})
    assert response.status == 201
    assert response.json["text"] == "héllo 🌍"


def test_text_of_exactly_max_length_is_accepted(app):
    assert call(app, "POST", "/api/notes", {"text": "a" * MAX_TEXT}).status == 201
    assert call(app, "POST", "/api/notes", {"text": "🌍" * MAX_TEXT}).status == 201


@pytest.mark.parametrize("raw", [
    b"",                                  # no body
    b"not json",                          # not JSON
    b'{"text": "unterminated',            # broken JSON
    b"\xff\xfe{}",                        # not UTF-8
    b'["text", "hello"]',                 # JSON, not an object
    b'"hello"',                           # JSON string, not an object
    b"null",
    b"{}",                                # missing text
    b'{"txt": "hello"}',                  # misspelt field
    b'{"text": null}',
    b'{"text": 42}',                      # not a string
    b'{"text": ["a"]}',
    b'{"text": true}',
    b'{"text": ""}',                      # empty
    b'{"text": "   \\n\\t"}',             # blank
    b'{"text": "\\ud800"}',               # lone surrogate: not storable Unicode
    ('{"text": "%s"}' % ("a" * (MAX_TEXT + 1))).encode(),   # one character too long
])
def test_bad_note_bodies_answer_400(app, store, raw):
    response = call(app, "POST", "/api/notes", raw=raw)
    assert response.status == 400, response.json
    assert isinstance(response.json["error"], str) and response.json["error"]
    assert response.headers["X-App"] == "app1"
    assert store.notes == {}


def test_invalid_content_length_answers_400(app):
    assert call(app, "POST", "/api/notes", raw=b"{}", content_length="abc").status == 400


def test_oversized_body_answers_413_without_reading_it(app):
    response = call(app, "POST", "/api/notes", raw=b"x", content_length=str(10 ** 9))
    assert response.status == 413
    assert "error" in response.json


def test_database_down_on_write_answers_503():
    response = call(make_app(FakeStore(fail=True), "app1"), "POST", "/api/notes", {"text": "x"})
    assert response.status == 503
    assert "database" in response.json["error"]


# --- reading ----------------------------------------------------------------

def test_get_note_by_id(app):
    call(app, "POST", "/api/notes", {"text": "first"})
    response = call(app, "GET", "/api/notes/1")
    assert response.status == 200
    assert response.json == {"id": 1, "text": "first", "app": "app1",
                             "created_at": "2024-01-02T03:04:05.678+00:00"}


def test_missing_note_answers_404_json(app):
    response = call(app, "GET", "/api/notes/12345")
    assert response.status == 404
    assert "12345" in response.json["error"]
    assert response.headers["X-App"] == "app1"


@pytest.mark.parametrize("raw_id", ["abc", "0", "-1", "1.5", "01", "1e3", "+1", " 1",
                                    "1\n", "9" * 20, str(2 ** 63), "٣"])
def test_note_id_must_be_a_positive_integer(app, raw_id):
    response = call(app, "GET", "/api/notes/" + raw_id)
    assert response.status == 400, raw_id
    assert "positive integer" in response.json["error"]


def test_largest_bigint_id_is_valid_and_simply_not_found(app):
    assert call(app, "GET", f"/api/notes/{2 ** 63 - 1}").status == 404


def test_list_notes_counts_and_returns_the_ten_latest(app):
    for i in range(12):
        call(app, "POST", "/api/notes", {"text": f"note {i}"})
    response = call(app, "GET", "/api/notes")
    assert response.status == 200
    assert response.json["count"] == 12
    assert [n["id"] for n in response.json["latest"]] == list(range(12, 2, -1))


def test_list_notes_when_empty(app):
    assert call(app, "GET", "/api/notes").json == {"count": 0, "latest": []}


def test_database_down_on_read_answers_503():
    app = make_app(FakeStore(fail=True), "app1")
    assert call(app, "GET", "/api/notes").status == 503
    assert call(app, "GET", "/api/notes/1").status == 503


# --- routing ----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/api", "/api/", "/api/notes/", "/api/notes/1/x",
                                  "/api/healthz", "/API/notes", "/api/notes/1/"])
def test_unknown_paths_answer_404_json(app, path):
    response = call(app, "GET", path)
    assert response.status == 404
    assert "error" in response.json
    assert response.headers["X-App"] == "app1"


@pytest.mark.parametrize("method, path, allow", [
    ("POST", "/api/health", "GET, HEAD"),
    ("DELETE", "/api/health", "GET, HEAD"),
    ("PUT", "/api/notes", "GET, HEAD, POST"),
    ("DELETE", "/api/notes", "GET, HEAD, POST"),
    ("PATCH", "/api/notes", "GET, HEAD, POST"),
    ("POST", "/api/notes/1", "GET, HEAD"),
    ("DELETE", "/api/notes/1", "GET, HEAD"),
])
def test_wrong_method_answers_405_with_allow(app, method, path, allow):
    response = call(app, method, path, {"text": "x"})
    assert response.status == 405
    assert response.headers["Allow"] == allow
    assert "error" in response.json
    assert response.headers["X-App"] == "app1"


def test_unexpected_exception_answers_500_json_and_is_logged():
    class Broken(FakeStore):
        def latest_notes(self, limit):
            raise RuntimeError("bug")

    response = call(make_app(Broken(), "app1"), "GET", "/api/notes")
    assert response.status == 500
    assert response.json == {"error": "internal error"}
    assert response.headers["X-App"] == "app1"


def test_head_answers_like_get_without_a_body(app):
    status, headers, body = call_head(app, "/api/health")
    assert status.startswith("200") and body == b""
    assert headers["X-App"] == "app1"
    assert int(headers["Content-Length"]) == len(call(app, "GET", "/api/health").body)


def test_content_length_header_matches_body(app):
    response = call(app, "GET", "/api/health")
    assert int(response.headers["Content-Length"]) == len(response.body)


# --- configuration and command line --------------------------------------------

def test_store_reads_its_configuration_from_the_environment():
    store = notes_app.NotesStore.from_env({"DB_HOST": "192.0.2.41", "DB_NAME": "notes",
                                           "DB_USER": "notes", "DB_PASSWORD": "secret"})
    assert (store.host, store.port, store.database, store.user, store.password) == (
        "192.0.2.41", "3306", "notes", "notes", "secret")


def test_unconfigured_store_raises_store_error_not_crash():
    with pytest.raises(StoreError, match="DB_HOST"):
        notes_app.NotesStore.from_env({})._connect()


def test_env_file_parsing(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\n\nDB_HOST=192.0.2.41\nDB_PASSWORD='a=b'\nAPP_HOST_NAME=app1\n")
    assert notes_app.read_env_file(env_file) == {"DB_HOST": "192.0.2.41", "DB_PASSWORD": "a=b",
                                                 "APP_HOST_NAME": "app1"}


def test_migrate_prints_ok_or_changed(monkeypatch, capsys):
    applied = [[(1, "create the notes table")], []]
    monkeypatch.setattr(notes_app.NotesStore, "migrate", lambda self: applied.pop(0))
    env = ["--env-file", "/dev/null"]
    assert notes_app.main(["migrate"] + env) == 0
    assert capsys.readouterr().out == "schema: changed\n"
    assert notes_app.main(["migrate"] + env) == 0
    assert capsys.readouterr().out == "schema: ok\n"


def test_migrate_fails_clearly_when_the_database_is_unreachable(monkeypatch, capsys):
    def unreachable(self):
        raise StoreError("cannot connect to 192.0.2.41:3306: timed out")

    monkeypatch.setattr(notes_app.NotesStore, "migrate", unreachable)
    assert notes_app.main(["migrate"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "schema: error" in captured.err and "timed out" in captured.err


def test_module_exposes_a_wsgi_application():
    assert callable(notes_app.application)
