package extract

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

func TestDecideJobs(t *testing.T) {
	now := testStart
	o := Options{SweepEvery: DefaultSweepEvery}
	fresh := now.Add(-time.Hour)
	cases := []struct {
		name    string
		cp      *jobsState
		listing string
		order   string
		o       Options
		want    readKind
	}{
		{"never read", nil, "a", "asc", o, readFull},
		{"full run", &jobsState{Listing: "a", Done: true, Count: 5, SweptAt: fresh}, "a", "asc", Options{Full: true, SweepEvery: DefaultSweepEvery}, readFull},
		{"unchanged", &jobsState{Listing: "a", Done: true, Count: 5, SweptAt: fresh}, "a", "asc", o, readSkip},
		{"listing moved", &jobsState{Listing: "a", Done: true, Count: 5, SweptAt: fresh}, "b", "asc", o, readIncremental},
		{"jobs not final", &jobsState{Listing: "a", Done: true, Count: 5, NonFinal: 1, SweptAt: fresh}, "a", "desc", o, readIncremental},
		{"interrupted", &jobsState{Listing: "a", Next: 3, PageSize: 10, Count: 20, SweptAt: fresh}, "a", "asc", o, readResume},
		{"parked for the probe", &jobsState{Pending: 7, PendingLast: 9, PendingListing: "a", Count: 7}, "a", "asc", o, readPending},
		{"parked, listing moved since", &jobsState{Pending: 7, PendingLast: 9, PendingListing: "a", Count: 7}, "b", "asc", o, readFull},
		{"parked with jobs not final", &jobsState{Pending: 7, PendingLast: 9, PendingListing: "a", Count: 7, NonFinal: 1}, "a", "asc", o, readFull},
		{"parked newest first, no bulk status", &jobsState{Pending: 7, PendingLast: 9, PendingListing: "a", Count: 7, Order: "desc"}, "a", "asc",
			Options{SweepEvery: DefaultSweepEvery, SkipBulkStatus: true}, readFull},
		{"parked oldest first, no bulk status", &jobsState{Pending: 7, PendingLast: 9, PendingListing: "a", Count: 7}, "a", "asc",
			Options{SweepEvery: DefaultSweepEvery, SkipBulkStatus: true}, readPending},
		{"latest running, nothing else open", &jobsState{Listing: "a", Done: true, Count: 5, NonFinal: 1, Latest: "IN_PROGRESS", SweptAt: fresh}, "a", "asc", o, readSkip},
		{"latest running, no bulk status", &jobsState{Listing: "a", Done: true, Count: 5, NonFinal: 1, Latest: "IN_PROGRESS", SweptAt: fresh}, "a", "asc",
			Options{SweepEvery: DefaultSweepEvery, SkipBulkStatus: true}, readIncremental},
		{"queued behind a running job", &jobsState{Listing: "a", Done: true, Count: 5, NonFinal: 2, Latest: "PENDING", SweptAt: fresh}, "a", "asc", o, readIncremental},
		{"an older job open", &jobsState{Listing: "a", Done: true, Count: 5, NonFinal: 2, Latest: "IN_PROGRESS", SweptAt: fresh}, "a", "asc", o, readIncremental},
		{"sweep due", &jobsState{Listing: "a", Done: true, Count: 5, SweptAt: now.Add(-8 * 24 * time.Hour)}, "a", "asc", o, readFull},
		{"sweep off", &jobsState{Listing: "a", Done: true, Count: 5}, "a", "asc", Options{SweepEvery: -1}, readSkip},
		{"nothing stored", &jobsState{Listing: "a", Done: true, SweptAt: fresh}, "b", "asc", o, readFull},
		{"order unknown", &jobsState{Listing: "a", Done: true, Count: 1, SweptAt: fresh}, "b", "", o, readFull},
	}
	for _, tc := range cases {
		if got := decideJobs(tc.cp, tc.listing, tc.order, now, tc.o); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPages(t *testing.T) {
	for _, tc := range []struct{ stored, size, want int }{
		{0, 10, 1}, {1, 10, 1}, {10, 10, 1}, {11, 10, 2}, {20, 10, 2}, {21, 10, 3}, {5, 10000, 1},
	} {
		if got := ascStartPage(tc.stored, tc.size); got != tc.want {
			t.Errorf("ascStartPage(%d, %d) = %d, want %d", tc.stored, tc.size, got, tc.want)
		}
	}
	ids := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	notFinal := map[int64]bool{2: true, 3: true, 8: true, 12: true}
	got := nonFinalPages(ids, func(id int64) bool { return !notFinal[id] }, 4, 3)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("nonFinalPages = %v, want [1 2] (page 3 is the start page)", got)
	}
}

func TestOrderOf(t *testing.T) {
	for _, tc := range []struct {
		ids  []int64
		want string
	}{
		{nil, ""}, {[]int64{5}, ""}, {[]int64{1, 2, 9}, "asc"}, {[]int64{9, 2, 1}, "desc"},
		{[]int64{1, 3, 2}, "mixed"}, {[]int64{2, 2}, "mixed"},
	} {
		if got := orderOf(tc.ids); got != tc.want {
			t.Errorf("orderOf(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
}

func TestAlignedAsc(t *testing.T) {
	known := []int64{10, 20, 30, 40, 50}
	for _, tc := range []struct {
		name  string
		start int
		ids   []int64
		want  bool
	}{
		{"repeats the stored tail and goes on", 3, []int64{40, 50, 60, 70}, true},
		{"only stored", 0, []int64{10, 20, 30}, true},
		{"only new right after", 5, []int64{51, 52}, true},
		{"a stored job vanished", 3, []int64{50, 60}, false},
		{"a job appeared in the middle", 2, []int64{25, 30}, false},
		{"new ids not above the stored", 4, []int64{50, 45}, false},
		{"a gap before the page", 7, []int64{90}, false},
		{"empty page where stored jobs are", 3, nil, false},
		{"empty page after them", 5, nil, true},
	} {
		if got := alignedAsc(known, tc.start, tc.ids); got != tc.want {
			t.Errorf("%s: alignedAsc = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDescCheck(t *testing.T) {
	stored := []int64{10, 20, 30, 40}
	set := func(ids ...int64) map[int64]struct{} {
		m := map[int64]struct{}{}
		for _, id := range ids {
			m[id] = struct{}{}
		}
		return m
	}
	for _, tc := range []struct {
		name        string
		seen        map[int64]struct{}
		minPage     int64
		minNonFinal int64
		stop, mis   bool
	}{
		{"only new jobs so far", set(60, 50), 50, 0, false, false},
		{"reached stored, all final", set(60, 50, 40, 30), 30, 0, true, false},
		{"reached stored, older not final", set(60, 50, 40, 30), 30, 20, false, false},
		{"the not-final one re-read", set(60, 50, 40, 30, 20), 20, 20, true, false},
		{"a stored job vanished", set(60, 50, 30), 30, 0, false, true},
	} {
		stop, mis := descCheck(stored, tc.seen, tc.minPage, tc.minNonFinal)
		if stop != tc.stop || mis != tc.mis {
			t.Errorf("%s: stop %v misaligned %v, want %v %v", tc.name, stop, mis, tc.stop, tc.mis)
		}
	}
	if stop, mis := descCheck(nil, set(5), 5, 0); stop || mis {
		t.Error("with nothing stored a read never stops early")
	}
}

func TestRepeatsPage(t *testing.T) {
	if !repeatsPage([]int64{1, 2}, []int64{1, 2, 3}) || repeatsPage([]int64{3, 4}, []int64{1, 2, 3}) ||
		repeatsPage(nil, []int64{1}) || repeatsPage([]int64{1}, nil) {
		t.Error("repeatsPage")
	}
}

func TestProbe(t *testing.T) {
	for _, tc := range []struct {
		n            int
		last         int64
		ids          []int64
		size, number int
		capped, ok   bool
	}{
		{10, 100, []int64{100}, 9, 2, false, true},          // exactly 10 jobs
		{10, 100, []int64{100, 101, 102}, 9, 2, true, true}, // capped at 10
		{10, 100, nil, 9, 2, false, false},                  // job 10 must come back
		{10, 100, []int64{1, 2}, 9, 2, false, false},        // page 1 repeated
		{2, 7, nil, 2, 2, false, true},                      // too short for the trick
		{1, 7, []int64{8}, 1, 2, true, true},
	} {
		size, number := probeFor(tc.n)
		capped, ok := probeVerdict(tc.n, tc.last, tc.ids)
		if size != tc.size || number != tc.number || capped != tc.capped || ok != tc.ok {
			t.Errorf("n=%d ids=%v: probe %d/%d capped %v ok %v; want %d/%d %v %v",
				tc.n, tc.ids, size, number, capped, ok, tc.size, tc.number, tc.capped, tc.ok)
		}
	}
}

func TestPageVerdict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a        accountState
		n, size  int
		first    bool
		want     pageVerdict
		wantSize int // pageSize(10000) after observe
	}{
		{"full page", accountState{}, 10000, 10000, true, pageMore, 10000},
		{"later short page", accountState{}, 5, 10, false, pageEnds, 10000},
		{"empty first page", accountState{}, 0, 10000, true, pageEnds, 10000},
		{"new longest first page", accountState{Floor: 40}, 50, 10000, true, pageAmbiguous, 10000},
		{"as long as the longest", accountState{Floor: 50}, 50, 10000, true, pageAmbiguous, 10000},
		{"shorter than one seen", accountState{Floor: 60}, 50, 10000, true, pageEnds, 10000},
		{"as long as the cap", accountState{Cap: 50, Floor: 50}, 50, 10000, true, pageMore, 50},
		{"shorter than the cap", accountState{Cap: 50, Floor: 50}, 20, 10000, true, pageEnds, 50},
		{"longer than the cap: it is gone", accountState{Cap: 50, Floor: 50}, 70, 10000, true, pageAmbiguous, 10000},
	} {
		a := tc.a
		a.observe(tc.n, tc.size)
		if got := a.verdict(tc.n, tc.size, tc.first); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
		if got := a.pageSize(10000); got != tc.wantSize {
			t.Errorf("%s: page size %d, want %d", tc.name, got, tc.wantSize)
		}
	}
}

func TestListingFingerprint(t *testing.T) {
	base := `{"id":1,"name":"a","lastRunStatus":true,"lastRowsRetrieved":5,"processedRows":9,"lastDataDate":"2026-03-01","lastUpdate":1772400000000,"updateTime":1}`
	fp := func(raw string) string {
		var s datorama.Stream
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatal(err)
		}
		return listingFingerprint(&s)
	}
	want := fp(base)
	if fp(strings.Replace(base, `"name":"a"`, `"name":"b"`, 1)) != want || fp(strings.Replace(base, `"updateTime":1`, `"updateTime":2`, 1)) != want {
		t.Error("a rename or config change must not look like a run")
	}
	for _, change := range [][2]string{
		{`"lastRunStatus":true`, `"lastRunStatus":false`}, {`"lastRowsRetrieved":5`, `"lastRowsRetrieved":6`},
		{`"processedRows":9`, `"processedRows":10`}, {`"lastDataDate":"2026-03-01"`, `"lastDataDate":"2026-03-02"`},
		{`"lastUpdate":1772400000000`, `"lastUpdate":1772400000001`},
	} {
		if fp(strings.Replace(base, change[0], change[1], 1)) == want {
			t.Errorf("%s → %s must change the fingerprint", change[0], change[1])
		}
	}
}

func TestParseEntities(t *testing.T) {
	got, err := ParseEntities([]string{"jobs, streams", "harmonized-dimensions", "jobs"})
	if err != nil || strings.Join(got, ",") != "streams,jobs,harmonized_dimensions" {
		t.Errorf("ParseEntities = %v, %v", got, err)
	}
	if all, _ := ParseEntities(nil); len(all) != len(Entities) {
		t.Errorf("no names must mean all, got %v", all)
	}
	if _, err := ParseEntities([]string{"jobs,nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown entity: %v", err)
	}
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		done, total, calls int
		elapsed            time.Duration
		want               string
	}{
		{0, 0, 0, 0, "0/?  calls 0  0/min  ETA ?"},
		{50, 200, 120, 2 * time.Minute, "50/200  calls 120  60/min  ETA 6m0s"},
		{200, 200, 400, 4 * time.Minute, "200/200  calls 400  100/min  ETA 0s"},
	} {
		if got := progressLine("jobs", tc.done, tc.total, tc.calls, tc.elapsed); !strings.HasSuffix(got, tc.want) || !strings.HasPrefix(got, "jobs") {
			t.Errorf("progressLine = %q, want …%q", got, tc.want)
		}
	}
}

func TestBulkAgrees(t *testing.T) {
	allFinal := &jobsState{Count: 5, Latest: "SUCCESS"}
	running := &jobsState{Count: 5, NonFinal: 1, Latest: "IN_PROGRESS"}
	for _, tc := range []struct {
		name string
		cp   *jobsState
		run  string
		want bool
	}{
		{"all final, latest final", allFinal, "FAILURE", true},
		{"all final, never ran", allFinal, "", true},
		{"all final, a run started since", allFinal, "PENDING", false},
		{"all final, a run in progress", allFinal, "IN_PROGRESS", false},
		{"running, still running", running, "IN_PROGRESS", true},
		{"running, a job queued since", running, "PENDING", false},
		{"running, finished (listing lagging)", running, "SUCCESS", false},
		{"queued, still queued", &jobsState{Count: 5, NonFinal: 2, Latest: "PENDING"}, "PENDING", false},
	} {
		if got := bulkAgrees(tc.cp, tc.run); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestUndecodableCheckpointIsLogged: a checkpoint that does not decode counts as absent
// (the parent is read afresh), and says so in the log; a missing one says nothing.
func TestUndecodableCheckpointIsLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if _, ok := decodeState[jobsState](log, load.Checkpoint{Kind: kindJobs, ParentID: 42}); ok || buf.Len() != 0 {
		t.Fatalf("a missing checkpoint: ok %v, log %q", ok, buf.String())
	}
	if _, ok := decodeState[jobsState](log, load.Checkpoint{Kind: kindJobs, ParentID: 42, State: []byte(`{"done": "yes"}`)}); ok {
		t.Fatal("an undecodable checkpoint decoded")
	}
	if got := buf.String(); !strings.Contains(got, "does not decode") || !strings.Contains(got, "parent=42") || !strings.Contains(got, "kind=jobs") {
		t.Errorf("log %q does not name the checkpoint", got)
	}
}
