package serve

import (
	"fmt"
	"strings"

	"github.com/drextract/drextract/config"
)

// Schedule chains: a schedule with after: LEADER runs right after each run of LEADER that
// ended the way its when asks (ok, the default: only an ok run; always: any run that
// ended, not one stopped by shutdown). A skipped firing of the leader is no run, so it
// fires nothing. The follower is queued ahead of the runs already waiting, so it acts on
// what its leader just wrote; it still takes its turn as the single writer, never
// overlapping another run, and its own hold (back-off, exhausted quota) still applies.

// link connects every schedule to the ones that run after it; an unknown leader or a
// cycle is an error (config validation refuses both first).
func (s *Scheduler) link() error {
	byName := map[string]*entry{}
	for _, e := range s.entries {
		byName[e.sched.Name] = e
	}
	for _, e := range s.entries {
		if e.sched.After == "" {
			if e.sched.Cron == "" {
				return fmt.Errorf("serve: schedule %q has neither cron nor after", e.sched.Name)
			}
			continue
		}
		leader, ok := byName[e.sched.After]
		if !ok {
			return fmt.Errorf("serve: schedule %q runs after %q, which is not a schedule", e.sched.Name, e.sched.After)
		}
		switch whenOf(e.sched) {
		case config.WhenOK, config.WhenAlways:
		default:
			return fmt.Errorf("serve: schedule %q: when %q is neither ok nor always", e.sched.Name, e.sched.When)
		}
		leader.followers = append(leader.followers, e)
	}
	for _, e := range s.entries {
		path := []string{e.sched.Name}
		for l := byName[e.sched.After]; l != nil; l = byName[l.sched.After] {
			path = append(path, l.sched.Name)
			if l == e {
				return fmt.Errorf("serve: schedules run after each other in a cycle: %s", strings.Join(path, " after "))
			}
			if len(path) > len(s.entries) {
				break // a cycle further up, reported from one of its members
			}
		}
	}
	return nil
}

// chain queues the followers of leader whose when accepts how its run ended. Called with
// s.mu held, when the leader's run has been recorded.
func (s *Scheduler) chain(leader *entry, status string) {
	if status == StatusCanceled {
		return
	}
	var ahead []*entry
	for _, f := range leader.followers {
		name := f.sched.Name
		if whenOf(f.sched) == config.WhenOK && status != StatusOK {
			s.log.Info("chained schedule not run: its leader did not end ok", "schedule", name, "after", leader.sched.Name, "leader_status", status)
			continue
		}
		f.fired++
		now := s.clock.Now()
		switch {
		case now.Before(f.holdUntil):
			f.skipped++
			s.metrics.skipped(name, f.holdWhy)
			s.log.Info("schedule skipped", "schedule", name, "after", leader.sched.Name, "reason", f.holdWhy, "until", f.holdUntil)
			continue
		case f.queued:
			f.skipped++
			s.metrics.skipped(name, "already_queued")
			s.log.Info("schedule already queued; chained fire coalesced", "schedule", name, "after", leader.sched.Name)
			continue
		}
		f.queued, f.trigger = true, "after "+leader.sched.Name
		ahead = append(ahead, f)
		if len(s.queue) > 0 {
			s.metrics.queued(name)
		}
		s.log.Info("chained schedule queued", "schedule", name, "after", leader.sched.Name, "leader_status", status)
	}
	if len(ahead) == 0 {
		return
	}
	s.queue = append(ahead, s.queue...)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// whenOf is a chained schedule's when, defaulted; "" for a schedule that follows none.
func whenOf(sc *config.Schedule) string {
	switch {
	case sc.After == "":
		return ""
	case sc.When == "":
		return config.WhenOK
	}
	return sc.When
}

func names(es []*entry) []string {
	if len(es) == 0 {
		return nil
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.sched.Name
	}
	return out
}
