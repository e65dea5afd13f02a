-- The guard counts a database's recorded branches and looks one up by name on every
-- create_dev_branch (TallyBranches) instead of listing them: these keep both independent of how
-- many branches the database has.

-- +goose Up
CREATE INDEX branches_database_name ON branches (database_id, name);

-- +goose Down
DROP INDEX branches_database_name;
