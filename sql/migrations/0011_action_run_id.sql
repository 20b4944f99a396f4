-- One meaning per name: run_id points at runs. The action tables' reference to their
-- action run is action_run_id.

ALTER TABLE action_calls RENAME COLUMN run_id TO action_run_id;
ALTER TABLE action_items RENAME COLUMN run_id TO action_run_id;
