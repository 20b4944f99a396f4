-- Every API attempt of every command is one api_calls row (issue 12). Attempts are
-- appended to a journal next to the store as they complete and folded in here by the
-- process holding the store (at open and after each run); see load/journal.go.
--
-- id             monotonic within the store, assigned when a row is folded in (rows of
--                older versions are numbered at the first open after this migration):
--                a publisher reads "id > last published".
-- attempt_id     unique per attempt, made by the process that made the call: a fold
--                interrupted and repeated stores an attempt once.
-- action_run_id, action_call_no
--                the bulk-action call (action_calls) the attempt carried out; NULL for
--                every other call. action_calls c JOIN api_calls a
--                ON a.action_run_id = c.run_id AND a.action_call_no = c.call_no.
ALTER TABLE api_calls ADD COLUMN id BIGINT;
ALTER TABLE api_calls ADD COLUMN attempt_id VARCHAR;
ALTER TABLE api_calls ADD COLUMN action_run_id BIGINT;
ALTER TABLE api_calls ADD COLUMN action_call_no INTEGER;
