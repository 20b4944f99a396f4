package run

import (
	"context"
	"fmt"

	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/report"
)

// ReportOptions are what a report run is asked to do.
type ReportOptions struct {
	Definition config.Report
	// Span, when set, replaces the definition's date range.
	Span *report.Span
	// Priority of its Query API calls: ratelimit.Interactive when a person waits (it may
	// spend the daily reserve), ratelimit.Scheduled under the daemon.
	Priority ratelimit.Priority
}

// ReportDetails is what one definition's run landed.
type ReportDetails = report.Result

// Report runs one Query API report definition into its report_* table and publishes.
func (r *Runner) Report(ctx context.Context, st *load.Store, o ReportOptions) *Result {
	res := r.record(ctx, st, KindReport, func(ctx context.Context, res *Result, rec *audit.Recorder) error {
		client, err := r.client(rec, nil)
		if err != nil {
			return err
		}
		rr := &report.Runner{Client: client, Store: st, Clock: r.clock(), Logger: r.Log}
		results, err := rr.Run(ratelimit.WithPriority(ctx, o.Priority), []config.Report{o.Definition}, report.Options{Span: o.Span})
		res.Reports = results
		for _, rep := range results {
			res.Rows[rep.Table] += int(rep.Rows)
		}
		if err != nil {
			if reset, ok := datorama.QuotaReset(err); ok {
				res.Status, res.QuotaReset = load.RunQuotaExhausted, reset
			}
			return fmt.Errorf("report %s: %w", o.Definition.Name, err)
		}
		return nil
	})
	r.after(ctx, st, res)
	return res
}
