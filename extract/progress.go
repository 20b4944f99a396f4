package extract

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/drextract/drextract/clock"
)

// progress shows how far a crawl is: on a terminal one line rewritten in place (entity,
// done/total, calls, calls per minute, ETA), elsewhere a log line now and then. Rates
// and ETAs use the crawl's clock, so a virtual clock gives virtual rates. Safe for
// concurrent use.
type progress struct {
	out   io.Writer // nil: no terminal line
	log   *slog.Logger
	clk   clock.Clock
	calls func() int

	mu          sync.Mutex
	entity      string
	done, total int
	started     time.Time
	startCalls  int
	lastLog     time.Time
	lastDraw    time.Time
	enabled     bool
}

// logEvery is how often a plain progress line is logged while a stage runs.
const logEvery = time.Minute

func newProgress(w io.Writer, log *slog.Logger, clk clock.Clock, calls func() int) *progress {
	p := &progress{log: log, clk: clk, calls: calls, enabled: w != nil}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.out = w
	}
	return p
}

// stage starts a new stage of total items (0 when unknown).
func (p *progress) stage(entity string, total int) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	p.entity, p.done, p.total = entity, 0, total
	p.started = p.clk.Now()
	p.startCalls = p.calls()
	p.lastLog = p.started
	if p.out == nil {
		p.log.Info("crawling", "entity", entity, "total", total)
	}
	p.drawLocked(true)
}

// step marks n more items done.
func (p *progress) step(n int) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.drawLocked(false)
}

// finish ends the last stage's line.
func (p *progress) finish() {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	p.entity = ""
}

func (p *progress) finishLocked() {
	if p.entity == "" {
		return
	}
	if p.out != nil {
		p.drawLocked(true)
		fmt.Fprintln(p.out)
		return
	}
	p.log.Info("crawled", "entity", p.entity, "done", p.done, "total", p.total, "calls", p.calls()-p.startCalls)
}

func (p *progress) drawLocked(force bool) {
	now := p.clk.Now()
	calls := p.calls() - p.startCalls
	if p.out != nil {
		// Redrawing more often than a few times a second only costs terminal time.
		if !force && time.Since(p.lastDraw) < 200*time.Millisecond {
			return
		}
		p.lastDraw = time.Now()
		fmt.Fprintf(p.out, "\r\033[K%s", progressLine(p.entity, p.done, p.total, calls, now.Sub(p.started)))
		return
	}
	if now.Sub(p.lastLog) >= logEvery {
		p.lastLog = now
		p.log.Info("progress", "line", progressLine(p.entity, p.done, p.total, calls, now.Sub(p.started)))
	}
}

// progressLine renders one progress line: entity, done/total, calls, calls per minute
// and the time left at the pace so far ("?" until it can be told).
func progressLine(entity string, done, total, calls int, elapsed time.Duration) string {
	perMin := 0.0
	if elapsed > 0 {
		perMin = float64(calls) / elapsed.Minutes()
	}
	t, eta := "?", "?"
	if total > 0 {
		t = fmt.Sprint(total)
	}
	if done > 0 && total >= done && elapsed > 0 {
		eta = time.Duration(float64(elapsed) / float64(done) * float64(total-done)).Round(time.Second).String()
	}
	return fmt.Sprintf("%-22s %d/%s  calls %d  %.0f/min  ETA %s", entity, done, t, calls, perMin, eta)
}
