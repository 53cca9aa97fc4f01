-- +goose Up
-- A task interrupted by a stopped daemon runs again (tasks.Handler.Retry):
-- attempt counts its runs, max_attempts bounds them.
ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tasks DROP COLUMN max_attempts;
ALTER TABLE tasks DROP COLUMN attempt;
