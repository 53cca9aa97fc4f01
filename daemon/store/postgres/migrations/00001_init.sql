-- +goose Up
CREATE TABLE objects (
    kind    TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    owner   TEXT    NOT NULL DEFAULT '',
    parent  TEXT    NOT NULL DEFAULT '',
    version BIGINT NOT NULL,
    data    TEXT    NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX objects_name ON objects (kind, parent, name);
CREATE INDEX objects_owner ON objects (kind, owner, id);
CREATE INDEX objects_parent ON objects (kind, parent, id);

CREATE TABLE tasks (
    id               TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    resources        TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    progress         BIGINT NOT NULL,
    message          TEXT    NOT NULL,
    error            TEXT    NOT NULL,
    error_class      TEXT    NOT NULL,
    input            TEXT    NOT NULL,
    result           TEXT    NOT NULL,
    cancel_requested BIGINT NOT NULL,
    lease_owner      TEXT    NOT NULL,
    lease_until      BIGINT NOT NULL,
    idem_key         TEXT,
    created          BIGINT NOT NULL,
    started          BIGINT NOT NULL,
    finished         BIGINT NOT NULL
);
CREATE UNIQUE INDEX tasks_idem ON tasks (owner, idem_key);
CREATE INDEX tasks_state ON tasks (state, id);
CREATE INDEX tasks_owner ON tasks (owner, id);
CREATE INDEX tasks_target ON tasks (target, id);

CREATE TABLE task_log (
    task_id TEXT    NOT NULL,
    seq     BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    line    TEXT    NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_undo (
    task_id TEXT    NOT NULL,
    seq     BIGINT NOT NULL,
    action  TEXT    NOT NULL,
    args    TEXT    NOT NULL,
    done    BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE locks (
    resource TEXT PRIMARY KEY,
    task_id  TEXT NOT NULL
);
CREATE INDEX locks_task ON locks (task_id);

-- +goose Down
DROP TABLE locks;
DROP TABLE task_undo;
DROP TABLE task_log;
DROP TABLE tasks;
DROP TABLE objects;
