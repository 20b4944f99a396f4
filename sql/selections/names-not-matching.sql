-- description: Streams whose names do not match a naming convention (a regular expression
-- description: that must match the whole name). No action: review, then rename from a CSV.
-- param: pattern (required) the regular expression, e.g. '^[A-Z]{2} - .+$'
-- action: none
-- max_rows: 10000
SELECT s.id AS stream_id,
       s.workspace_id,
       s.name,
       s.data_source_name
FROM streams s
WHERE NOT s.is_deleted
  AND NOT regexp_full_match(s.name, $pattern)
ORDER BY s.workspace_id, s.id
