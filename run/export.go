package run

import (
	"context"
	"fmt"

	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/load"
)

// Export writes the Parquet export of st and publishes. The runs row keeps the rows
// exported per table.
func (r *Runner) Export(ctx context.Context, st *load.Store) *Result {
	res := r.record(ctx, st, KindExport, func(ctx context.Context, res *Result, _ *audit.Recorder) error {
		stats, err := st.Export(ctx, r.Config.Store.ParquetDir())
		for t, n := range stats.Rows {
			res.Rows[t] = int(n)
		}
		if err != nil {
			return fmt.Errorf("exporting Parquet to %s: %w", r.Config.Store.ParquetDir(), err)
		}
		res.Export = &stats
		return nil
	})
	r.after(ctx, st, res)
	return res
}
