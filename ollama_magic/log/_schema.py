"""The tables of the answer log (schema version ``SCHEMA_VERSION`` in ``PRAGMA user_version``).

``answers`` holds one row per request; ``chunks`` holds the pieces of answers still streaming
(appended about once a second, folded into ``answers.text`` when the answer ends); the
external-content FTS5 table ``answers_fts`` indexes prompt and answer through triggers.
"""

SCHEMA_VERSION = 1

SCHEMA = (
    # AUTOINCREMENT: an id that was forgotten is never given to a new record.
    """CREATE TABLE IF NOT EXISTS answers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started REAL NOT NULL,
        ended REAL,
        status TEXT NOT NULL,
        error TEXT,
        done_reason TEXT,
        backend TEXT NOT NULL,
        host TEXT NOT NULL,
        model TEXT NOT NULL,
        digest TEXT,
        request_hash TEXT NOT NULL,
        request TEXT NOT NULL,
        prompt TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        thinking TEXT NOT NULL DEFAULT '',
        stats TEXT NOT NULL DEFAULT '{}',
        provenance TEXT NOT NULL DEFAULT '{}',
        kernel TEXT NOT NULL,
        cell TEXT NOT NULL,
        writer_pid INTEGER NOT NULL,
        writer_start TEXT,
        writer_host TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS answers_by_request ON answers(request_hash, digest)",
    "CREATE INDEX IF NOT EXISTS answers_streaming ON answers(status) WHERE status = 'streaming'",
    """CREATE TABLE IF NOT EXISTS chunks (
        answer_id INTEGER NOT NULL,
        text BLOB NOT NULL,
        thinking BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS chunks_by_answer ON chunks(answer_id)",
)
FTS_SCHEMA = (
    """CREATE VIRTUAL TABLE IF NOT EXISTS answers_fts USING fts5(
        prompt, text, content='answers', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER IF NOT EXISTS answers_fts_insert AFTER INSERT ON answers BEGIN
        INSERT INTO answers_fts(rowid, prompt, text) VALUES (new.id, new.prompt, new.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS answers_fts_delete AFTER DELETE ON answers BEGIN
        INSERT INTO answers_fts(answers_fts, rowid, prompt, text)
        VALUES ('delete', old.id, old.prompt, old.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS answers_fts_update AFTER UPDATE OF prompt, text ON answers
    BEGIN
        INSERT INTO answers_fts(answers_fts, rowid, prompt, text)
        VALUES ('delete', old.id, old.prompt, old.text);
        INSERT INTO answers_fts(rowid, prompt, text) VALUES (new.id, new.prompt, new.text);
    END""",
)
