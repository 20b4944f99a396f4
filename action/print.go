package action

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// maxPrinted bounds the calls and skipped items a printed plan lists one by one.
const maxPrinted = 40

// WritePlan prints a plan for a person deciding whether to send it: what, how many,
// how long, what is skipped and why, and the calls.
func WritePlan(w io.Writer, p *Plan) error {
	b := &strings.Builder{}
	src := p.Source.Kind + " " + p.Source.Name
	if p.Source.Kind == "selection" {
		src = "selection " + p.Source.Name
	}
	fmt.Fprintf(b, "Plan: %s, from %s", p.Op, src)
	if len(p.Params) > 0 {
		keys := make([]string, 0, len(p.Params))
		for k := range p.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+p.Params[k])
		}
		fmt.Fprintf(b, " (%s)", strings.Join(kv, ", "))
	}
	fmt.Fprintln(b)
	fmt.Fprintf(b, "  rows:      %d, to send %d, skipped %d", len(p.Items), p.Planned(), len(p.Items)-p.Planned())
	if len(p.Skipped) > 0 {
		var parts []string
		for _, k := range sortedKeys(p.Skipped) {
			parts = append(parts, fmt.Sprintf("%s %d", k, p.Skipped[k]))
		}
		fmt.Fprintf(b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(b)
	fmt.Fprintf(b, "  calls:     %d grouped calls, %s\n", len(p.Calls), p.Estimate)
	o := p.Options
	var guards []string
	if o.MaxCalls > 0 {
		guards = append(guards, fmt.Sprintf("max %d calls", o.MaxCalls))
	}
	if o.MaxRows > 0 {
		guards = append(guards, fmt.Sprintf("max %d rows", o.MaxRows))
	}
	if p.Op.CreatesJobs() {
		if o.QueueMax > 0 {
			guards = append(guards, fmt.Sprintf("at most %d of our jobs pending per workspace", o.QueueMax))
		}
		if o.Cooldown > 0 {
			guards = append(guards, fmt.Sprintf("cooldown %s", o.Cooldown))
		}
	}
	if p.Op == OpProcess {
		guards = append(guards, fmt.Sprintf("chunks of %d days", o.ChunkDays))
	}
	if p.Op == OpDelete {
		guards = append(guards, deleteGuards(o))
	}
	if len(guards) > 0 {
		fmt.Fprintf(b, "  limits:    %s\n", strings.Join(guards, "; "))
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(b, "  WARNING:   %s\n", warn)
	}
	for _, n := range p.Reconciled {
		fmt.Fprintf(b, "  settled:   %s\n", n)
	}
	if p.Unreconciled > 0 {
		fmt.Fprintf(b, "  note:      %d call(s) of an earlier run may have been sent; they are checked at the API before anything is sent\n", p.Unreconciled)
	}
	if err := p.Check(); err != nil {
		fmt.Fprintf(b, "  REFUSED:   %v\n", err)
	}
	if len(p.Calls) > 0 {
		fmt.Fprintln(b, "Calls:")
		tw := tabwriter.NewWriter(b, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tmethod\tpath\tworkspace\tstreams\tdetail")
		for i, c := range p.Calls {
			if i == maxPrinted {
				fmt.Fprintf(tw, "  …\tand %d more calls\t\t\t\t\n", len(p.Calls)-maxPrinted)
				break
			}
			m, path := c.Endpoint()
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%d\t%s\n", c.No, m, path, c.WorkspaceID, len(c.StreamIDs), callDetail(c))
		}
		tw.Flush()
	}
	var skipped []*Item
	for _, it := range p.Items {
		if it.Status == StatusSkipped {
			skipped = append(skipped, it)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintln(b, "Skipped:")
		for i, it := range skipped {
			if i == maxPrinted {
				fmt.Fprintf(b, "  … and %d more\n", len(skipped)-maxPrinted)
				break
			}
			fmt.Fprintf(b, "  row %d: %s\n", it.Row.Line, it.Reason)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func callDetail(c *Call) string {
	switch c.Op {
	case OpRerun:
		return fmt.Sprintf("jobs %s", idList(c.JobIDs, 6))
	case OpProcess:
		s := fmt.Sprintf("%s..%s", c.Start, c.End)
		if c.ExpectedJobs > 0 {
			s += fmt.Sprintf(", ~%d jobs", c.ExpectedJobs)
		}
		return s
	case OpRerunAll:
		if c.ExpectedJobs > 0 {
			return fmt.Sprintf("~%d jobs", c.ExpectedJobs)
		}
	case OpDownload:
		return fmt.Sprintf("job %d → %s", c.JobIDs[0], c.OutPath)
	case OpRename, OpPatch, OpEnable, OpDisable, OpPut, OpMapping, OpCreateStream, OpCreatePattern, OpCreateCalc:
		return clipBody(c.Body)
	case OpDelete:
		return fmt.Sprintf("delete stream %d", c.StreamIDs[0])
	}
	return ""
}

func deleteGuards(o Options) string {
	s := "no stream that ran in the last 24 h (--force lifts it)"
	if o.Force {
		s = "streams that ran in the last 24 h too (--force)"
	}
	if m := o.withDefaults().MaxDelete; m > 0 {
		s = fmt.Sprintf("at most %d streams deleted; %s", m, s)
	}
	return s
}

func idList(ids []int64, n int) string {
	var parts []string
	for i, id := range ids {
		if i == n {
			parts = append(parts, fmt.Sprintf("… (%d)", len(ids)))
			break
		}
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ",")
}

// WriteReport prints how a run went.
func WriteReport(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	if r.Status == RunDryRun {
		fmt.Fprintln(b, "Dry run: nothing was sent. Add --yes to send.")
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(b, "Action run %d: %s — %d sent, %d failed, %d skipped, %d calls sent", r.RunID, r.Status, r.Sent, r.Failed, r.Skipped, r.CallsSent)
	if !r.QuotaReset.IsZero() {
		fmt.Fprintf(b, "; quota resets at %s", r.QuotaReset.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(b)
	if r.RunID > 0 {
		fmt.Fprintf(b, "Outcomes are filled in by the next crawl: drextract actions log --run %d\n", r.RunID)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
