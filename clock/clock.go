// Package clock is the one source of time for everything that waits: rate windows,
// job lifecycles, cron and backoff. It knows nothing of the API or the store.
//
// Production code uses Real, and Remote for the API's clock: the host clock corrected
// by the skew observed in the API's answers (their Date header), which is what the API's
// timestamps (resets, job times) must be compared with. Tests use a Manual clock,
// advanced by hand, or run in a testing/synctest bubble, where Real's timers move only
// when every goroutine waits. AutoAdvance guesses idleness from real time, so a busy
// machine makes it jump while a goroutine is still working: only the demo and
// benchmarks should use it.
package clock

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers. Implementations are safe for concurrent use.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once the clock has passed d from now.
	// A d <= 0 fires at once.
	After(d time.Duration) <-chan time.Time
	// Timer is After with a stop function, for a wait that may end another way (a
	// context, a notification): stop releases the timer. A Manual clock that kept a timer
	// nobody waits for would auto-advance to it.
	Timer(d time.Duration) (c <-chan time.Time, stop func())
}

// Sleep waits for d on c, or until ctx is done, whichever comes first.
// It returns ctx.Err() when the context ended the wait.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t, stop := c.Timer(d)
	defer stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t:
		return nil
	}
}

// SleepUntil waits until c reaches t, or until ctx is done.
func SleepUntil(ctx context.Context, c Clock, t time.Time) error {
	return Sleep(ctx, c, t.Sub(c.Now()))
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (Real) Timer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Offset is the wall clock shifted forward by an amount that only grows. The standalone
// simulator uses it so that POST /_sim/advance makes time pass as if it had really passed.
type Offset struct {
	mu  sync.Mutex
	off time.Duration
}

func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Add(o.off)
}

// After waits real time; advancing the offset does not wake earlier waiters.
func (o *Offset) After(d time.Duration) <-chan time.Time {
	ch, _ := o.Timer(d)
	return ch
}

// Timer waits real time, as After.
func (o *Offset) Timer(d time.Duration) (<-chan time.Time, func()) {
	ch := make(chan time.Time, 1)
	t := time.AfterFunc(d, func() { ch <- o.Now() })
	return ch, func() { t.Stop() }
}

// Advance moves the clock forward by d (ignored when d <= 0).
func (o *Offset) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	o.mu.Lock()
	o.off += d
	o.mu.Unlock()
}

// Manual is a virtual clock. Time moves only through Advance/Set, or, when auto-advance
// is on, by jumping straight to the earliest pending timer once nobody has touched the
// clock for the idle period. That lets many goroutines wait on simulated minutes while the
// test takes milliseconds.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*manualTimer
	touched time.Time // real time of the last Now/After call
}

type manualTimer struct {
	at time.Time
	ch chan time.Time
}

// NewManual returns a virtual clock set to start.
func NewManual(start time.Time) *Manual {
	return &Manual{now: start, touched: time.Now()}
}

func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.touched = time.Now()
	return m.now
}

func (m *Manual) After(d time.Duration) <-chan time.Time {
	ch, _ := m.Timer(d)
	return ch
}

func (m *Manual) Timer(d time.Duration) (<-chan time.Time, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.touched = time.Now()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- m.now
		return ch, func() {}
	}
	tm := &manualTimer{at: m.now.Add(d), ch: ch}
	m.timers = append(m.timers, tm)
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if i := slices.Index(m.timers, tm); i >= 0 {
			m.timers = slices.Delete(m.timers, i, i+1)
		}
	}
}

// Advance moves the clock forward by d and fires every timer that is due.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(m.now.Add(d))
}

// Set moves the clock to t (never backwards) and fires every timer that is due.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(t)
}

func (m *Manual) setLocked(t time.Time) {
	if t.Before(m.now) {
		return
	}
	m.now = t
	sort.Slice(m.timers, func(i, j int) bool { return m.timers[i].at.Before(m.timers[j].at) })
	n := 0
	for _, tm := range m.timers {
		if !tm.at.After(t) {
			tm.ch <- t
			continue
		}
		m.timers[n] = tm
		n++
	}
	m.timers = m.timers[:n]
}

// Pending reports how many timers wait on the clock.
func (m *Manual) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.timers)
}

// AutoAdvance starts a goroutine that, whenever timers are pending and the clock has been
// idle for idle of real time, jumps to the earliest timer. Call the returned func to stop.
// An idle of 1–5ms suits loopback HTTP tests; a longer idle is safer on a loaded machine
// but slower.
func (m *Manual) AutoAdvance(idle time.Duration) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	go func() {
		tick := time.NewTicker(idle / 4)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			m.mu.Lock()
			if len(m.timers) > 0 && time.Since(m.touched) >= idle {
				earliest := m.timers[0].at
				for _, tm := range m.timers[1:] {
					if tm.at.Before(earliest) {
						earliest = tm.at
					}
				}
				m.setLocked(earliest)
				m.touched = time.Now()
			}
			m.mu.Unlock()
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}
