-- Creations through the action planner (issue 14 point 4): the id of the stream, pattern
-- or calculated measurement an item created, from the API's answer or, after a lost
-- answer, from the workspace's listing. NULL for every other operation.

ALTER TABLE action_items ADD COLUMN created_id BIGINT;
