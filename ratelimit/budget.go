package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
)

// Budget is the rate budget of one token: it implements datorama.Gate. It keeps only the
// token's fingerprint. A Budget is safe for concurrent use; several Budgets of one token,
// in one process or several, share one budget when they share Config.StateDir.
type Budget struct {
	fp    string
	token string // set only inside a Pool, whose permits must carry the token
	cfg   Config
	clk   clock.Clock
	log   *slog.Logger
	file  *stateFile    // nil without a StateDir
	api   *clock.Remote // Config.Clock when it estimates the API's clock, else nil
	saver *clockSaver   // with a StateDir and api: where the estimate is saved
	note  *notifier
	owner string // names this Budget's calls in flight in the shared state
	pid   int

	mu        sync.Mutex // guards the fields below and orders this process's file updates
	st        *state     // the state; with a file, as last read
	queue     []*waiter
	rng       *mrand.Rand
	seq       uint64
	sent      int
	throttled int
	warned    map[string]time.Time
	lastWhy   string
	// probeID names the call in flight that was let through a daily-quota refusal to
	// learn the API's clock; probed says one was sent. See apiclock.go.
	probeID string
	probed  bool
}

var _ datorama.Gate = (*Budget)(nil)

// NewBudget returns the budget of token. Only the token's fingerprint is kept: permits
// leave the token to the client (Permit.Token returns "").
func NewBudget(token string, cfg Config) *Budget {
	cfg = cfg.withDefaults()
	cfg.restoreAPIClock(cfg.StateDir)
	return newBudget(datorama.Fingerprint(token), "", cfg, nil)
}

// restoreAPIClock seeds a Clock that estimates the API's clock with the estimate saved
// in dir, once per Budget, Pool or ReadStatus.
func (cfg Config) restoreAPIClock(dir string) {
	if api, ok := cfg.Clock.(*clock.Remote); ok {
		if err := RestoreAPIClock(dir, api); err != nil {
			cfg.Logger.Warn("ignoring the saved estimate of the API's clock", "component", "ratelimit", "err", err)
		}
	}
}

// newBudget makes a Budget of cfg, which has its defaults already: applying them twice
// would turn Reserve's "none" (0 after defaults) into the default share.
func newBudget(fp, token string, cfg Config, note *notifier) *Budget {
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	b := &Budget{
		fp:     fp,
		token:  token,
		cfg:    cfg,
		clk:    cfg.Clock,
		log:    cfg.Logger.With("component", "ratelimit", "token", fp),
		pid:    os.Getpid(),
		owner:  fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(nonce[:])),
		rng:    mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
		warned: map[string]time.Time{},
	}
	b.api, _ = cfg.Clock.(*clock.Remote)
	switch {
	case cfg.StateDir != "":
		b.file = newStateFile(cfg.StateDir, fp)
		b.note = notifierFor(cfg.StateDir)
		if b.api != nil {
			b.saver = saverFor(cfg.StateDir)
		}
	case note != nil:
		b.note = note
	default:
		b.note = &notifier{}
	}
	liveOwners.Store(b.owner, struct{}{})
	b.st = newState(fp, cfg, b.clk.Now())
	return b
}

// Acquire waits until a call may be sent and returns its permit, or fails without
// sending: with ctx's error, or a *datorama.QuotaError when the daily quota open to the
// caller's priority (PriorityFrom(ctx)) is gone. Calls with Attempt > 1 are retries;
// after a 429 they wait until the window the 429 reported reopens.
func (b *Budget) Acquire(ctx context.Context, c datorama.Call) (datorama.Permit, error) {
	p, err := acquire(ctx, b.clk, b.note, []*Budget{b}, c, PriorityFrom(ctx), b.cfg.Safety.Poll)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// update runs fn on the current state brought up to now, under the Budget's lock and,
// with a StateDir, the file lock; fn reports whether it changed the state.
func (b *Budget) update(ctx context.Context, fn func(s *state, now time.Time) bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file == nil {
		now := b.clk.Now()
		b.st.tidy(now, b.cfg, func(flight) bool { return true })
		fn(b.st, now)
		return nil
	}
	return b.file.locked(ctx, func() error {
		now := b.clk.Now()
		s, err := b.file.load(b.fp)
		if errors.Is(err, errCorrupt) {
			b.warnOnce(now, "replacing an unreadable rate-limit state file", "err", err)
			s, err = nil, nil
		}
		if err != nil {
			return err
		}
		dirty := s == nil
		if s == nil {
			s = newState(b.fp, b.cfg, now)
		}
		if s.tidy(now, b.cfg, b.alive) {
			dirty = true
		}
		if fn(s, now) {
			dirty = true
		}
		b.st = s
		if !dirty {
			return nil
		}
		s.Updated = now
		return b.file.save(s)
	})
}

// liveOwners holds the owner names of this process's Budgets. A call in flight recorded
// under this process's pid by any other owner was left by an earlier process that had
// the same pid (pids are reused, in containers often at once) and will never finish.
var liveOwners sync.Map // owner → struct{}

// alive says whether a call in flight may still finish: its process runs and, when that
// is this process, one of its Budgets sent it.
func (b *Budget) alive(f flight) bool {
	if f.PID == b.pid {
		_, ok := liveOwners.Load(f.Owner)
		return ok
	}
	return processAlive(f.PID)
}

// attemptResult is what one look at a budget found.
type attemptResult struct {
	d     decision
	score [2]int // what is left this window and today: more is preferred
	// foreign says d waits on a call of another process, which no notification will
	// announce.
	foreign bool
	permit  *permit // set when the call was taken
}

// attempt is one look at the budget on behalf of waiter w. With take, a call that may go
// is recorded as sent and its permit returned.
func (b *Budget) attempt(ctx context.Context, w *waiter, c datorama.Call, prio Priority, take bool) (attemptResult, error) {
	var r attemptResult
	err := b.update(ctx, func(s *state, now time.Time) bool {
		win := s.win(c.Kind)
		left, dailyLeft := s.remaining(c.Kind), s.dailyRemaining()
		r.score = [2]int{left, dailyLeft}
		if !b.isHead(w) {
			r.d = decision{UntilChange: true, Why: "behind a call of higher priority"}
			return false
		}
		in := input{
			Now:            now,
			Remaining:      left,
			Reset:          win.Reset,
			Known:          win.Known,
			InFlight:       s.inFlight(c.Kind, win.Reset),
			External:       win.External,
			ExternalPrev:   win.ExternalPrev,
			LastSend:       win.LastSend,
			BlockedUntil:   win.BlockedUntil,
			DailyRemaining: dailyLeft,
			DailyReset:     s.Daily.Reset,
			Reserve:        b.cfg.reserveFor(prio, s.Daily.Limit),
			Headroom:       b.cfg.Safety.Headroom,
			Spread:         b.cfg.Safety.spreadFor(win.Limit),
			Grace:          b.cfg.Safety.Grace,
		}
		r.d = decide(in)
		probe := false
		if r.d.Err != nil && b.quotaMayBeStale() {
			r.d, probe = b.probeDecision(in, r.d)
		}
		if r.d.UntilChange {
			r.foreign = s.foreignInFlight(c.Kind, win.Reset, b.pid)
		}
		if r.d.Why != b.lastWhy && r.d.Why != "" {
			b.log.Debug("call waits", "kind", c.Kind, "priority", prio, "why", r.d.Why, "wait", r.d.Wait,
				"remaining", left, "reset", win.Reset, "daily_remaining", dailyLeft)
		}
		b.lastWhy = r.d.Why
		if !take || !r.d.Go() {
			return false
		}
		b.seq++
		id := fmt.Sprintf("%s-%d", b.owner, b.seq)
		s.take(c.Kind, flight{ID: id, Owner: b.owner, PID: b.pid}, now)
		if probe {
			b.probeID, b.probed = id, true
			b.log.Info("the shared state says the daily quota is gone, but this process has not seen the API's clock yet: sending one call to learn it",
				"reset", s.Daily.Reset, "kind", c.Kind)
		}
		b.sent++
		r.permit = &permit{b: b, id: id, kind: c.Kind}
		return true
	})
	if err != nil {
		return r, fmt.Errorf("rate budget of %s: %w", b.fp, err)
	}
	return r, nil
}

// quotaMayBeStale says a daily-quota refusal may come only from the shared state being
// read on the wrong clock: this process estimates the API's clock but has not observed
// it yet, so the state another process left may name a reset that has already passed on
// the API's clock. Callers hold b.mu.
func (b *Budget) quotaMayBeStale() bool {
	return b.file != nil && b.api != nil && !b.api.Observed()
}

// probeDecision replaces a daily-quota refusal d that may be stale: the first call goes
// (as soon as its minute window allows; probe reports it may go now), later ones wait
// for its answer; once it was answered without telling the clock, the refusal stands.
// Callers hold b.mu.
func (b *Budget) probeDecision(in input, d decision) (_ decision, probe bool) {
	switch {
	case b.probeID != "":
		return decision{UntilChange: true, Why: "waiting for the answer that tells the API's clock"}, false
	case b.probed:
		return d, false
	}
	in.DailyRemaining, in.Reserve = 1, 0
	w := decide(in)
	if !w.Go() {
		return w, false
	}
	w.Why = "one call to learn the API's clock: the quota stop may be stale"
	return w, true
}

// finish is Permit.Done: it reconciles the state with the attempt's answer.
func (b *Budget) finish(p *permit, status int, rate datorama.Rate) {
	var notes []string
	var after windowState
	var dailyLeft int
	err := b.update(context.Background(), func(s *state, now time.Time) bool {
		if p.id == b.probeID {
			b.probeID = ""
		}
		notes = s.finish(p.id, p.kind, status, rate, now, b.rng.Float64())
		if status == 429 {
			b.throttled++
		}
		after, dailyLeft = *s.win(p.kind), s.dailyRemaining()
		for _, n := range notes {
			b.warnOnce(now, "ignoring a rate header", "detail", n)
		}
		return true
	})
	b.note.broadcast()
	if err != nil {
		b.log.Error("recording a finished call", "err", err)
		return
	}
	if b.saver != nil {
		if err := b.saver.save(b.api); err != nil {
			b.log.Warn("saving the estimate of the API's clock", "err", err)
		}
	}
	if status == 429 {
		b.log.Info("call throttled (429)", "kind", p.kind, "reset", after.Reset, "blocked_until", after.BlockedUntil,
			"daily_remaining", dailyLeft)
	}
}

// warnOnce logs msg at most once a minute per distinct detail, so a server that sends
// a garbage header on every answer does not flood the log. Callers hold b.mu.
func (b *Budget) warnOnce(now time.Time, msg string, args ...any) {
	key := msg + fmt.Sprint(args...)
	if t, ok := b.warned[key]; ok && now.Sub(t) < time.Minute && !now.Before(t) {
		return
	}
	b.warned[key] = now
	b.log.Warn(msg, args...)
}

// Status reports what the budget knows now. With a StateDir it reads the shared file, so
// it shows every process's spending.
func (b *Budget) Status() Status {
	var st Status
	err := b.update(context.Background(), func(s *state, now time.Time) bool {
		st = statusOf(s, now, b.cfg)
		return false
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.log.Warn("reading the shared rate-limit state; showing the last one read", "err", err)
		st = statusOf(b.st, b.clk.Now(), b.cfg)
	}
	st.Sent, st.Throttled = b.sent, b.throttled
	return st
}

// permit is one granted attempt.
type permit struct {
	b    *Budget
	id   string
	kind datorama.Kind
	once sync.Once
}

func (p *permit) Token() string       { return p.b.token }
func (p *permit) Fingerprint() string { return p.b.fp }

// Done records the attempt's outcome; calls after the first are ignored.
func (p *permit) Done(status int, rate datorama.Rate, _ time.Duration) {
	p.once.Do(func() { p.b.finish(p, status, rate) })
}
