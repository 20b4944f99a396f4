package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/run"
)

// runError is a run that did not end ok: its status chooses the exit code.
type runError struct{ res *run.Result }

func (e *runError) Unwrap() error { return e.res.Err }

func (e *runError) Error() string {
	res := e.res
	what := "run"
	if res.Kind == run.KindAction {
		what = "action run"
	}
	if res.RunID != 0 {
		what = fmt.Sprintf("%s %d", what, res.RunID)
	}
	switch {
	case res.Interrupted:
		return fmt.Sprintf("%s interrupted: every committed page is kept; run it again to resume", what)
	case res.Status == load.RunQuotaExhausted:
		msg := "quota exhausted, resets at " + formatReset(res.QuotaReset)
		var qe *datorama.QuotaError
		if errors.As(res.Err, &qe) {
			msg += ": " + qe.Why()
		}
		if res.Kind == run.KindAction {
			msg += "; the rest of " + what + " was not sent"
		}
		return msg
	case res.Status == load.RunPartial && res.Kind == run.KindAction && res.Action != nil && res.Action.Report != nil &&
		res.Action.Report.Failed > 0:
		return fmt.Sprintf("%s partial: %d items failed (drextract actions log --run %d)", what,
			res.Action.Report.Failed, res.Action.Report.RunID)
	case res.Status == load.RunPartial:
		msg := fmt.Sprintf("%s partial: incomplete: %s", what, strings.Join(res.Incomplete, "; "))
		if res.Err != nil {
			msg += ": " + res.Err.Error()
		}
		return msg
	}
	if res.Err == nil {
		return what + " failed"
	}
	if res.RunID == 0 {
		return res.Err.Error()
	}
	return fmt.Sprintf("%s failed: %v", what, res.Err)
}

func (e *runError) code() int {
	res := e.res
	switch {
	case res.Interrupted:
		return ExitCanceled
	case res.Status == load.RunPartial:
		return ExitPartial
	case res.Status == load.RunQuotaExhausted:
		return ExitQuotaExhausted
	case isUsage(res.Err):
		return ExitUsage // e.g. a plan over its guard rails: nothing was sent
	}
	return ExitFailure
}

// runErr is nil for a run that ended ok (or only planned), else a *runError.
func runErr(res *run.Result) error {
	if (res.Status == load.RunOK || res.Status == run.RunDryRun) && res.Err == nil && !res.Interrupted {
		return nil
	}
	return &runError{res}
}

// printRun writes a run's summary: status, calls and rows per table, and what stayed
// incomplete.
func printRun(w io.Writer, res *run.Result) {
	fmt.Fprintf(w, "run %d: %s, %d API calls; rows: %s\n", res.RunID, res.Status, res.Calls, rowsPerTable(res.Rows))
	for _, p := range res.Incomplete {
		fmt.Fprintf(w, "  incomplete: %s\n", p)
	}
}

// rowsPerTable renders rows per table, sorted by table.
func rowsPerTable(rows map[string]int) string {
	tables := make([]string, 0, len(rows))
	for t := range rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	parts := make([]string, 0, len(tables))
	for _, t := range tables {
		parts = append(parts, fmt.Sprintf("%s %d", t, rows[t]))
	}
	if len(parts) == 0 {
		return "no rows"
	}
	return strings.Join(parts, ", ")
}
