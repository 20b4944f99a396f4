package ratelimit

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
)

// waiter is one Acquire waiting in the queues of its candidate budgets.
type waiter struct {
	prio  Priority
	retry bool // a retry of a call already sent once: it goes before new calls
	seq   uint64
	kind  datorama.Kind
}

var waiterSeq atomic.Uint64

// before orders waiters: higher priority first, then retries, then first come.
func (w *waiter) before(o *waiter) bool {
	if w.prio != o.prio {
		return w.prio > o.prio
	}
	if w.retry != o.retry {
		return w.retry
	}
	return w.seq < o.seq
}

func (b *Budget) enqueue(w *waiter) {
	b.mu.Lock()
	b.queue = append(b.queue, w)
	b.mu.Unlock()
}

func (b *Budget) dequeue(w *waiter) {
	b.mu.Lock()
	b.queue = slices.DeleteFunc(b.queue, func(o *waiter) bool { return o == w })
	b.mu.Unlock()
}

// isHead reports whether no waiter of the same kind goes before w. Callers hold b.mu.
func (b *Budget) isHead(w *waiter) bool {
	for _, o := range b.queue {
		if o != w && o.kind == w.kind && o.before(w) {
			return false
		}
	}
	return true
}

// waiting counts the waiters queued on b (for tests).
func (b *Budget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// acquire is the waiting shared by Budget and Pool. The call queues on every candidate
// budget and takes a permit from the first that lets it go, preferring the one with the
// most left. Between looks it waits for the earliest time a candidate named, for a
// change announced by note, or (when only another process can unblock it) for poll; it
// always gives up when ctx ends. It fails with a QuotaError only when every candidate
// refuses the call for quota.
func acquire(ctx context.Context, clk clock.Clock, note *notifier, cands []*Budget, c datorama.Call, prio Priority, poll time.Duration) (*permit, error) {
	w := &waiter{prio: prio, retry: c.Attempt > 1, seq: waiterSeq.Add(1), kind: c.Kind}
	for _, b := range cands {
		b.enqueue(w)
	}
	defer func() {
		for _, b := range cands {
			b.dequeue(w)
		}
		note.broadcast()
	}()
	results := make([]attemptResult, len(cands))
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := note.changed()
		// A lone budget is asked and taken from in one step; a pool looks at all
		// first, to take from the one with the most left.
		take := len(cands) == 1
		for i, b := range cands {
			r, err := b.attempt(ctx, w, c, prio, take)
			if err != nil {
				return nil, err
			}
			if r.permit != nil {
				return r.permit, nil
			}
			results[i] = r
		}
		if !take {
			order := make([]int, 0, len(cands))
			for i, r := range results {
				if r.d.Go() {
					order = append(order, i)
				}
			}
			slices.SortStableFunc(order, func(a, b int) int {
				sa, sb := results[a].score, results[b].score
				if sa[0] != sb[0] {
					return sb[0] - sa[0]
				}
				return sb[1] - sa[1]
			})
			for _, i := range order {
				r, err := cands[i].attempt(ctx, w, c, prio, true)
				if err != nil {
					return nil, err
				}
				if r.permit != nil {
					return r.permit, nil
				}
				results[i] = r
			}
		}
		wait, qerr := nextLook(results, poll)
		if qerr != nil {
			return nil, qerr
		}
		var timer <-chan time.Time
		stop := func() {}
		if wait > 0 {
			timer, stop = clk.Timer(wait)
		}
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-changed:
		case <-timer:
		}
		stop()
	}
}

// nextLook sums up the candidates' refusals: how long to wait on the clock before the
// next look (0: only until a change is announced), and the quota error to return when
// all of them refused for quota (Reserved if any refused only for the reserve; the
// earliest reset). A refusal that waits on another process's call, which no
// notification will announce, waits at most poll.
func nextLook(results []attemptResult, poll time.Duration) (wait time.Duration, qerr *datorama.QuotaError) {
	quota := 0
	for _, r := range results {
		d := r.d.Wait
		switch {
		case r.d.Err != nil:
			quota++
			if qerr == nil {
				qerr = &datorama.QuotaError{Reset: r.d.Err.Reset, Reserved: r.d.Err.Reserved}
				continue
			}
			if r.d.Err.Reset.Before(qerr.Reset) {
				qerr.Reset = r.d.Err.Reset
			}
			qerr.Reserved = qerr.Reserved || r.d.Err.Reserved
			continue
		case r.d.UntilChange && r.foreign:
			d = poll
		case r.d.UntilChange:
			continue
		}
		if d > 0 && (wait <= 0 || d < wait) {
			wait = d
		}
	}
	if quota < len(results) {
		qerr = nil
	}
	return wait, qerr
}
