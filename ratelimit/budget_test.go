package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
)

var platformCall = datorama.Call{Kind: datorama.Platform, Method: "GET", PathTemplate: "/v1/workspaces", Attempt: 1}

// grace is the default Safety.Grace, after which a window counts as reopened.
const grace = 250 * time.Millisecond

func mustAcquire(t *testing.T, g datorama.Gate, ctx context.Context, c datorama.Call) datorama.Permit {
	t.Helper()
	p, err := g.Acquire(ctx, c)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return p
}

// seqOf is the order in which a budget granted a permit.
func seqOf(t *testing.T, p datorama.Permit) int {
	t.Helper()
	id := p.(*permit).id
	n, err := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
	if err != nil {
		t.Fatalf("permit id %q", id)
	}
	return n
}

func TestAcquireWaitsForTheWindowToReopen(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		rate    func(reset time.Time) datorama.Rate
		wantAt  func(reset time.Time) time.Time
		attempt int
	}{
		{
			name: "window used up by our own calls", status: 200,
			rate:   func(reset time.Time) datorama.Rate { return rate(platform(60, 0, reset)...) },
			wantAt: func(reset time.Time) time.Time { return reset.Add(grace) },
		},
		{
			name: "429 with X-RateLimit-Reset: the retry waits for it", status: 429, attempt: 2,
			rate: func(reset time.Time) datorama.Rate {
				return rate(datorama.HeaderRateLimitReset, ms(reset), datorama.HeaderDailyRemaining, "15000")
			},
			wantAt: func(reset time.Time) time.Time { return reset.Add(grace) },
		},
		{
			name: "429 with the bucket's own reset and nothing left", status: 429, attempt: 2,
			rate:   func(reset time.Time) datorama.Rate { return rate(platform(60, 0, reset)...) },
			wantAt: func(reset time.Time) time.Time { return reset.Add(grace) },
		},
		{
			name: "429 without headers: a backoff of at most a second", status: 429, attempt: 2,
			rate:   func(time.Time) datorama.Rate { return rate() },
			wantAt: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// The bubble's clock moves only while every goroutine waits: the grant comes
				// at the first instant the budget allows, however busy the machine.
				start := t0.Add(20 * time.Second)
				mc := bubbleClock(start)
				b := NewBudget("token-a", Config{Clock: mc})
				reset := t0.Add(time.Minute)
				p := mustAcquire(t, b, context.Background(), platformCall)
				p.Done(tt.status, tt.rate(reset), time.Millisecond)
				c := platformCall
				if tt.attempt > 0 {
					c.Attempt = tt.attempt
				}
				p = mustAcquire(t, b, context.Background(), c)
				defer p.Done(200, rate(), 0)
				got := mc.Now()
				if tt.wantAt == nil {
					if d := got.Sub(start); d < 500*time.Millisecond || d > time.Second {
						t.Errorf("retried after %v, want a backoff within [0.5s, 1s]", d)
					}
					return
				}
				if want := tt.wantAt(reset); !got.Equal(want) {
					t.Errorf("granted at %v, want %v", got, want)
				}
			})
		})
	}
}

func TestAcquireGivesUpWhenTheContextEnds(t *testing.T) {
	synctest.Test(t, testAcquireGivesUpWhenTheContextEnds)
}

func testAcquireGivesUpWhenTheContextEnds(t *testing.T) {
	mc := clock.NewManual(t0)
	b := NewBudget("token-a", Config{Clock: mc})
	p := mustAcquire(t, b, context.Background(), platformCall)
	p.Done(429, rate(datorama.HeaderRateLimitReset, ms(t0.Add(time.Minute))), 0)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, platformCall)
		errc <- err
	}()
	synctest.Wait() // the call queued and waits
	if n := b.waiting(); n != 1 {
		t.Fatalf("%d calls waiting, want 1", n)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
	if n := b.waiting(); n != 0 {
		t.Errorf("%d waiters left in the queue", n)
	}
	if !mc.Now().Equal(t0) {
		t.Errorf("the clock moved")
	}
}

// TestWaitingCallsGoInPriorityOrder queues calls while the window is closed and checks
// the order in which they are granted when it reopens.
func TestWaitingCallsGoInPriorityOrder(t *testing.T) {
	type call struct {
		prio  Priority
		retry bool
	}
	tests := []struct {
		name  string
		calls []call // in the order they start waiting
		want  []int  // indexes into calls, in the order they must be granted
	}{
		{"interactive overtakes scheduled and backfill",
			[]call{{Backfill, false}, {Scheduled, false}, {Interactive, false}}, []int{2, 1, 0}},
		{"first come within a priority", []call{{Scheduled, false}, {Scheduled, false}, {Scheduled, false}}, []int{0, 1, 2}},
		{"a retry goes before new calls of its priority, not before higher ones",
			[]call{{Scheduled, false}, {Scheduled, true}, {Interactive, false}, {Backfill, true}}, []int{2, 1, 0, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mc := clock.NewManual(t0.Add(30 * time.Second))
				b := NewBudget("token-a", Config{Clock: mc, Safety: Safety{Spread: -1}})
				reset := t0.Add(time.Minute)
				p := mustAcquire(t, b, context.Background(), platformCall)
				p.Done(429, rate(datorama.HeaderRateLimitReset, ms(reset)), 0)
				seqs := make([]int, len(tt.calls))
				var wg sync.WaitGroup
				for i, c := range tt.calls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						call := platformCall
						if c.retry {
							call.Attempt = 2
						}
						p, err := b.Acquire(WithPriority(context.Background(), c.prio), call)
						if err != nil {
							t.Errorf("Acquire: %v", err)
							return
						}
						seqs[i] = seqOf(t, p)
						p.Done(200, rate(), 0)
					}()
					synctest.Wait() // queued before the next one starts
					if n := b.waiting(); n != i+1 {
						t.Fatalf("%d calls waiting, want %d", n, i+1)
					}
				}
				mc.Set(reset.Add(grace))
				wg.Wait()
				for rank, i := range tt.want {
					if seqs[i] != rank+2 { // permit 1 was the call that emptied the window
						t.Errorf("call %d (%v) granted as #%d, want #%d (grant order %v)", i, tt.calls[i], seqs[i]-1, rank+1, seqs)
					}
				}
			})
		})
	}
}

func TestDailyQuotaAndReserve(t *testing.T) {
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		left     int // daily calls left per the headers
		prio     Priority
		want     int // calls granted before the quota error
		reserved bool
	}{
		{"scheduled stops at the 10% reserve", 110, Scheduled, 10, true},
		{"backfill stops at reserve plus backfill reserve", 110, Backfill, 5, true},
		{"interactive spends the reserve, then stops at the quota", 110, Interactive, 110, false},
		{"scheduled gets nothing once only the reserve is left", 100, Scheduled, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := clock.NewManual(t0)
			b := NewBudget("token-a", Config{Clock: mc, DailyQuota: 1000, BackfillReserve: 0.005, PlatformLimit: 1000})
			ctx := WithPriority(context.Background(), tt.prio)
			// The first call, interactive so the reserve cannot refuse it, learns the day.
			p := mustAcquire(t, b, WithPriority(context.Background(), Interactive), platformCall)
			p.Done(200, rate(datorama.HeaderDailyLimit, "1000", datorama.HeaderDailyRemaining, strconv.Itoa(tt.left),
				datorama.HeaderDailyReset, ms(midnight)), 0)
			granted := 0
			var err error
			for range 2000 {
				var p datorama.Permit
				p, err = b.Acquire(ctx, platformCall)
				if err != nil {
					break
				}
				granted++
				p.Done(200, rate(), 0)
			}
			if granted != tt.want {
				t.Errorf("granted %d calls, want %d", granted, tt.want)
			}
			var qe *datorama.QuotaError
			if !errors.As(err, &qe) || !errors.Is(err, datorama.ErrQuotaExhausted) {
				t.Fatalf("error %v, want a *datorama.QuotaError matching ErrQuotaExhausted", err)
			}
			if qe.Reserved != tt.reserved || !qe.Reset.Equal(midnight) {
				t.Errorf("error %+v, want Reserved=%v, Reset=%v", qe, tt.reserved, midnight)
			}
			if !mc.Now().Equal(t0) {
				t.Errorf("a quota error waited")
			}
		})
	}
}

// TestFirstCallOfAWindowProbes: before any answer of a window, a second call waits for
// the first one's answer instead of guessing.
func TestFirstCallOfAWindowProbes(t *testing.T) {
	synctest.Test(t, testFirstCallOfAWindowProbes)
}

func testFirstCallOfAWindowProbes(t *testing.T) {
	mc := clock.NewManual(t0)
	b := NewBudget("token-a", Config{Clock: mc})
	first := mustAcquire(t, b, context.Background(), platformCall)
	got := make(chan datorama.Permit, 1)
	go func() { got <- mustAcquire(t, b, context.Background(), platformCall) }()
	synctest.Wait() // the second call has done all it can before the first one's answer
	select {
	case <-got:
		t.Fatal("second call went before the first one's answer")
	default:
	}
	if n := b.waiting(); n != 1 {
		t.Fatalf("%d calls waiting, want 1", n)
	}
	first.Done(200, rate(platform(60, 40, t0.Add(time.Minute))...), 0)
	second := <-got
	second.Done(200, rate(platform(60, 39, t0.Add(time.Minute))...), 0)
	if st := b.Status(); st.Platform.Remaining != 39 || !st.Platform.Known {
		t.Errorf("status %+v, want 39 left, known", st.Platform)
	}
	if mc.Pending() != 0 {
		t.Errorf("%d timers pending: the probe wait must not use the clock", mc.Pending())
	}
}

func TestGarbageHeadersAreLoggedNotObeyed(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	mc := clock.NewManual(t0)
	b := NewBudget("secret-token-value", Config{Clock: mc, Logger: log})
	for range 3 {
		p := mustAcquire(t, b, context.Background(), platformCall)
		p.Done(200, rate(datorama.HeaderPlatformRemaining, "banana", datorama.HeaderDailyReset, "yesterday"), 0)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"component=ratelimit", "X-PlatformRateLimit-Remaining", "X-DailyQuota-Reset", datorama.Fingerprint("secret-token-value")} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-token-value") {
		t.Errorf("log holds the token:\n%s", out)
	}
	if n := strings.Count(out, "banana"); n != 1 {
		t.Errorf("the same garbage was logged %d times in a minute, want once", n)
	}
	if st := b.Status(); st.Platform.Remaining != 57 {
		t.Errorf("Remaining = %d, want 57 from local counts", st.Platform.Remaining)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestStatus(t *testing.T) {
	mc := clock.NewManual(t0.Add(5 * time.Second))
	b := NewBudget("token-a", Config{Clock: mc, DailyQuota: 1000, BackfillReserve: 0.05})
	p := mustAcquire(t, b, context.Background(), platformCall)
	inflight := mustAcquire(t, b, WithPriority(context.Background(), Interactive), datorama.Call{Kind: datorama.Query, Attempt: 1})
	defer inflight.Done(0, rate(), 0)
	p.Done(200, rate(append(platform(60, 50, t0.Add(time.Minute)),
		datorama.HeaderDailyLimit, "1000", datorama.HeaderDailyRemaining, "400", datorama.HeaderDailyReset, ms(t0.Add(14*time.Hour)))...), 0)
	st := b.Status()
	want := Status{
		Fingerprint: datorama.Fingerprint("token-a"),
		At:          mc.Now(),
		Platform:    WindowStatus{Limit: 60, Remaining: 50, Reset: t0.Add(time.Minute), Known: true, External: 9},
		Query:       WindowStatus{Limit: 200, Remaining: 199, Reset: t0.Add(time.Minute), InFlight: 1},
		Daily: DailyStatus{Limit: 1000, Remaining: 399, Reset: t0.Add(14 * time.Hour), Known: true,
			Reserve: 100, BackfillReserve: 50, ScheduledLeft: 299, BackfillLeft: 249},
		InFlight: 1,
		Sent:     2,
	}
	if st != want {
		t.Errorf("Status()\n got %+v\nwant %+v", st, want)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// acquireNow is Acquire for a call that must not wait: called inside a synctest bubble,
// where the timeout fires only once every goroutine waits, a call that waits (on the
// clock or for another call) fails with context.DeadlineExceeded, however slow the
// machine is, and one that may go never does.
func acquireNow(g datorama.Gate, c datorama.Call) (datorama.Permit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	return g.Acquire(ctx, c)
}
