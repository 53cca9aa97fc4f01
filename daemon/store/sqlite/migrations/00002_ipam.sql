-- +goose Up
CREATE TABLE ipam_pools (
    id       TEXT    PRIMARY KEY,
    uid      TEXT    NOT NULL,
    clusters TEXT    NOT NULL,
    blocks   TEXT    NOT NULL,
    version  INTEGER NOT NULL
);

CREATE TABLE ipam_cursors (
    pool    TEXT    NOT NULL,
    block   TEXT    NOT NULL,
    next    INTEGER NOT NULL,
    at_end  INTEGER NOT NULL,
    wrapped INTEGER NOT NULL,
    PRIMARY KEY (pool, block)
);

-- One row per unit that is not plainly free. sort_key orders rows by
-- address then prefix length, the order List pages in.
CREATE TABLE ipam_records (
    pool         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    sort_key     TEXT    NOT NULL,
    block        TEXT    NOT NULL,
    state        INTEGER NOT NULL,
    vm           TEXT    NOT NULL,
    iface        TEXT    NOT NULL,
    tags         TEXT    NOT NULL,
    allocated_at INTEGER NOT NULL,
    released_at  INTEGER NOT NULL,
    PRIMARY KEY (pool, prefix)
);
CREATE INDEX ipam_records_order ON ipam_records (pool, sort_key);
CREATE INDEX ipam_records_block ON ipam_records (pool, block);
CREATE INDEX ipam_records_owner ON ipam_records (vm, iface);

-- +goose Down
DROP TABLE ipam_records;
DROP TABLE ipam_cursors;
DROP TABLE ipam_pools;
