package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestChains: a schedule may run after another instead of or besides a cron, with when
// ok (the default) or always.
func TestChains(t *testing.T) {
	src := `version: 1
schedules:
  - name: hourly
    cron: "5 * * * *"
    extract: {}
  - name: rerun
    after: hourly
    action: {selection: failed-jobs-24h}
  - name: export
    cron: "0 6 * * *"
    after: rerun
    when: always
    export: {}
`
	c, err := Parse("s.yaml", []byte(src), ValidateOptions{KnownSelections: testOptions().KnownSelections})
	if err != nil {
		t.Fatal(err)
	}
	rerun, _ := c.Schedule("rerun")
	if rerun.After != "hourly" || rerun.When != WhenOK || rerun.Cron != "" {
		t.Errorf("rerun: after %q, when %q, cron %q; want after hourly, when ok by default, no cron", rerun.After, rerun.When, rerun.Cron)
	}
	if !rerun.Next(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)).IsZero() {
		t.Error("a schedule without cron has a next fire time")
	}
	export, _ := c.Schedule("export")
	if export.When != WhenAlways || export.Next(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)).IsZero() {
		t.Errorf("export: when %q; want always, and its cron still fires", export.When)
	}
	hourly, _ := c.Schedule("hourly")
	if hourly.When != "" {
		t.Errorf("a schedule that follows nothing has when %q", hourly.When)
	}
}

// TestChainMistakes: config check refuses cycles, unknown names, a schedule with neither
// cron nor after and bad when values, each as one FILE:LINE error.
func TestChainMistakes(t *testing.T) {
	sched := func(name, rest string) string {
		return "  - name: " + name + "\n" + rest + "    export: {}\n"
	}
	cases := []struct {
		name, schedules string
		kind            error
		want            string
	}{
		{"unknown leader", sched("a", "    after: nightly\n"),
			ErrUnknownSchedule, `s.yaml:4: schedules[0].after: no schedule named "nightly" to run after`},
		{"runs after itself", sched("a", "    after: a\n"),
			ErrScheduleCycle, `s.yaml:4: schedules[0].after: schedules run after each other in a cycle: a → a; start the chain with a schedule that has a cron and no after`},
		{"two in a cycle", sched("a", "    after: b\n") + sched("b", "    after: a\n"),
			ErrScheduleCycle, `s.yaml:4: schedules[0].after: schedules run after each other in a cycle: a → b → a; start the chain with a schedule that has a cron and no after`},
		{"three in a cycle, one with a cron", sched("root", "    cron: \"@daily\"\n") + sched("a", "    after: c\n") + sched("b", "    cron: \"@hourly\"\n    after: a\n") + sched("c", "    after: b\n"),
			ErrScheduleCycle, `s.yaml:7: schedules[1].after: schedules run after each other in a cycle: a → b → c → a; start the chain with a schedule that has a cron and no after`},
		{"neither cron nor after", sched("a", ""),
			ErrMissingKey, `s.yaml:3: schedules[0].cron: missing; give cron (e.g. "5 * * * *" or "TZ=Europe/Paris 0 7 * * *"), after (the schedule whose runs this one follows), or both`},
		{"bad when", sched("root", "    cron: \"@daily\"\n") + sched("a", "    after: root\n    when: failed\n"),
			ErrBadValue, `s.yaml:8: schedules[1].when: "failed"; want ok (after a run that ended ok, the default) or always (after every run)`},
		{"when without after", sched("a", "    cron: \"@daily\"\n    when: always\n"),
			ErrBadValue, `s.yaml:5: schedules[0].when: when applies to a chained schedule; give after: SCHEDULE too, or leave when out`},
		{"empty cron with after", sched("root", "    cron: \"@daily\"\n") + sched("a", "    cron: \"\"\n    after: root\n"),
			ErrInvalidCron, `s.yaml:7: schedules[1].cron: empty cron expression; leave the key out to run only after "root"`},
		{"after is not a name", sched("a", "    cron: \"@daily\"\n    after: [b]\n"),
			ErrBadType, `s.yaml:5: schedules[0].after: want a string, got a list`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte("version: 1\nschedules:\n"+tc.schedules), ValidateOptions{KnownSelections: testOptions().KnownSelections})
			es := AsErrors(err)
			if len(es) != 1 || !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want one %v", err, tc.kind)
			}
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}
