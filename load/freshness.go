package load

import (
	"context"
	"database/sql"
	"fmt"
	drsql "github.com/drextract/drextract/sql"
	"time"
)

// TableFreshness says how fresh one current-state table is.
type TableFreshness struct {
	Table string
	Rows  int64 // rows not marked deleted
	// LastSeen is max(last_seen): when a crawl last saw one of its rows; zero when empty.
	LastSeen time.Time
	// LastRunID is the run that wrote the most recently seen row; 0 when empty.
	LastRunID int64
}

// currentTables are the current-state tables, in crawl order.
var currentTables = drsql.Entities

// Freshness reads, per current-state table, its live rows, when a crawl last saw one and
// the run that did.
func (s *Store) Freshness(ctx context.Context) ([]TableFreshness, error) {
	out := make([]TableFreshness, 0, len(currentTables))
	for _, table := range currentTables {
		f := TableFreshness{Table: table}
		var seen sql.NullTime
		var run sql.NullInt64
		q := fmt.Sprintf(`SELECT count(*) FILTER (WHERE NOT is_deleted), max(last_seen), arg_max(run_id, last_seen) FROM %s`, QuoteIdent(table))
		if err := s.db.QueryRowContext(ctx, q).Scan(&f.Rows, &seen, &run); err != nil {
			return nil, fmt.Errorf("reading the freshness of %s: %w", table, err)
		}
		if seen.Valid {
			f.LastSeen = seen.Time.UTC()
		}
		f.LastRunID = run.Int64
		out = append(out, f)
	}
	return out, nil
}
