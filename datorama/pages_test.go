package datorama

import (
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// statsServer serves one stream's stats the way the API does: body pageSize and
// 1-based pageNumber, a bare array, capped page size, either order. fault may answer a
// request instead (returning true); n counts requests from 1.
type statsServer struct {
	mu     sync.Mutex
	ids    []int64 // in creation order
	desc   bool
	cap    int
	n      int
	pages  []int // page numbers asked, in order
	fault  func(s *statsServer, n, page, size int, w http.ResponseWriter) bool
	before func(s *statsServer, n int) // runs first, e.g. to add jobs mid-listing
}

func (s *statsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ PageSize, PageNumber int }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.PageSize <= 0 || body.PageNumber <= 0 {
		answer(400, `{"errors":["bad page"]}`)(w, r)
		return
	}
	s.mu.Lock()
	s.n++
	n := s.n
	s.pages = append(s.pages, body.PageNumber)
	if s.before != nil {
		s.before(s, n)
	}
	if s.fault != nil && s.fault(s, n, body.PageNumber, body.PageSize, w) {
		s.mu.Unlock()
		return
	}
	b := s.page(body.PageNumber, body.PageSize)
	s.mu.Unlock()
	answer(200, string(b))(w, r)
}

// page renders page p of size (capped); the caller holds mu.
func (s *statsServer) page(p, size int) []byte {
	if s.cap > 0 && size > s.cap {
		size = s.cap
	}
	ordered := slices.Clone(s.ids)
	if s.desc {
		slices.Reverse(ordered)
	}
	lo := min((p-1)*size, len(ordered))
	hi := min(lo+size, len(ordered))
	out := make([]map[string]any, 0, hi-lo)
	for _, id := range ordered[lo:hi] {
		out = append(out, map[string]any{"id": id, "dataStreamId": 3973838, "status": "SUCCESS"})
	}
	b, _ := json.Marshal(out)
	return b
}

func seqIDs(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = 381868700 + int64(i)
	}
	return ids
}

// collect drains All, returning the ids and the error that ended it (if any).
func collect(t *testing.T, c *Client, pageSize int) ([]int64, error) {
	t.Helper()
	return drain(t, c.Jobs.allPages(t.Context(), 3973838, pageSize))
}

// drain collects a jobs iterator's ids and the error that ended it (if any).
func drain(t *testing.T, seq iter.Seq2[*Job, error]) ([]int64, error) {
	t.Helper()
	var ids []int64
	for j, err := range seq {
		if err != nil {
			if j != nil {
				t.Error("an error came with a job")
			}
			return ids, err
		}
		ids = append(ids, j.ID)
	}
	return ids, nil
}

func sortedIDs(ids []int64) []int64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	return s
}

func TestJobsAll(t *testing.T) {
	tests := []struct {
		name     string
		srv      *statsServer
		pageSize int
		want     []int64 // as a set
		pages    []int   // page numbers the server saw
		wantErr  error   // errors.Is target; nil for success
	}{
		{name: "ascending, short last page", srv: &statsServer{ids: seqIDs(25)}, pageSize: 10,
			want: seqIDs(25), pages: []int{1, 2, 3}},
		{name: "descending", srv: &statsServer{ids: seqIDs(25), desc: true}, pageSize: 10,
			want: seqIDs(25), pages: []int{1, 2, 3}},
		{name: "no jobs: the empty first page is confirmed", srv: &statsServer{}, pageSize: 10, want: nil, pages: []int{1, 1, 1}},
		{
			name: "an empty first page that is a fault is fetched again",
			srv: &statsServer{ids: seqIDs(15), fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
				if n != 1 {
					return false
				}
				_, _ = w.Write([]byte(`[]`))
				return true
			}},
			pageSize: 10, want: seqIDs(15), pages: []int{1, 1, 2},
		},
		{name: "ends on a page boundary: the empty page is confirmed", srv: &statsServer{ids: seqIDs(20)}, pageSize: 10,
			want: seqIDs(20), pages: []int{1, 2, 3, 3, 3}},
		{name: "API caps the page size, caller passes the cap", srv: &statsServer{ids: seqIDs(25), cap: 7}, pageSize: 7,
			want: seqIDs(25), pages: []int{1, 2, 3, 4}},
		{name: "API caps the page size, caller asks for more: first page only", srv: &statsServer{ids: seqIDs(25), cap: 7}, pageSize: 10,
			want: seqIDs(7), pages: []int{1}},
		{
			name: "a page repeating the previous page is fetched again",
			srv: &statsServer{ids: seqIDs(25), fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
				if n != 2 {
					return false
				}
				_, _ = w.Write(s.page(page-1, size))
				return true
			}},
			pageSize: 10, want: seqIDs(25), pages: []int{1, 2, 2, 3},
		},
		{
			name: "an empty page in the middle is fetched again",
			srv: &statsServer{ids: seqIDs(25), fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
				if n != 2 {
					return false
				}
				_, _ = w.Write([]byte(`[]`))
				return true
			}},
			pageSize: 10, want: seqIDs(25), pages: []int{1, 2, 2, 3},
		},
		{
			name: "newest-first with jobs added between pages: overlap is yielded once",
			srv: &statsServer{ids: seqIDs(25), desc: true, before: func(s *statsServer, n int) {
				if n == 2 {
					s.ids = append(s.ids, 381868800, 381868801, 381868802)
				}
			}},
			// Page 2 then repeats 3 ids of page 1; the three new jobs are not seen by this
			// listing (they are newer than its start), and nothing is yielded twice.
			pageSize: 10, want: seqIDs(25), pages: []int{1, 2, 3},
		},
		{
			name: "a page that keeps repeating ends in ErrInconsistentPages",
			srv: &statsServer{ids: seqIDs(25), fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
				if page != 2 {
					return false
				}
				_, _ = w.Write(s.page(1, size))
				return true
			}},
			pageSize: 10, want: seqIDs(10), pages: []int{1, 2, 2, 2, 2}, wantErr: ErrInconsistentPages,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, serve(t, tt.srv))
			got, err := collect(t, env.c, tt.pageSize)
			checkListing(t, got, err, tt.wantErr, tt.want, tt.srv.pages, tt.pages)
		})
	}
}

// TestJobsAllErrorIsNotTheEnd: a page that keeps failing ends the loop with an error
// after the jobs already read, never as a quiet end of list.
func TestJobsAllErrorIsNotTheEnd(t *testing.T) {
	srv := &statsServer{ids: seqIDs(25), fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
		if page != 2 {
			return false
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}}
	env := newEnv(t, serve(t, srv), withOpts(WithRetries(2)))
	var pairs int
	var last error
	for j, err := range env.c.Jobs.allPages(t.Context(), 3973838, 10) {
		pairs++
		last = err
		if err == nil && j == nil {
			t.Fatal("a nil job without error")
		}
	}
	var ae *APIError
	if pairs != 11 || !errors.As(last, &ae) || ae.Status != 503 {
		t.Fatalf("%d pairs, last error %v: want 10 jobs then the 503", pairs, last)
	}
}

func TestJobsAllStopsWhenTheCallerStops(t *testing.T) {
	srv := &statsServer{ids: seqIDs(25)}
	env := newEnv(t, serve(t, srv))
	n := 0
	for _, err := range env.c.Jobs.allPages(t.Context(), 3973838, 10) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 12 {
			break
		}
	}
	if !slices.Equal(srv.pages, []int{1, 2}) {
		t.Errorf("pages %v: breaking out must stop the paging", srv.pages)
	}
}

// AllToEmptyPage is All for a caller that does not know the page-size cap: only a
// confirmed empty page ends it, so a capped page size still yields the whole list, and
// All's defences hold on every page.
func TestJobsAllToEmptyPage(t *testing.T) {
	// emptyAt answers [] to the requests numbered at.
	emptyAt := func(at ...int) func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
		return func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
			if !slices.Contains(at, n) {
				return false
			}
			_, _ = w.Write([]byte(`[]`))
			return true
		}
	}
	tests := []struct {
		name     string
		srv      *statsServer
		pageSize int
		want     []int64 // as a set
		pages    []int   // page numbers the server saw
		wantErr  error   // errors.Is target; nil for success
	}{
		// All, asked the same, stops after page 1 (TestJobsAll).
		{name: "API caps the page size, caller asks for more: the whole list", srv: &statsServer{ids: seqIDs(25), cap: 7}, pageSize: 10,
			want: seqIDs(25), pages: []int{1, 2, 3, 4, 5, 5, 5}},
		{name: "a short last page does not end it; the empty page after it is confirmed", srv: &statsServer{ids: seqIDs(25)}, pageSize: 10,
			want: seqIDs(25), pages: []int{1, 2, 3, 4, 4, 4}},
		{name: "ends on a page boundary: as All", srv: &statsServer{ids: seqIDs(20)}, pageSize: 10,
			want: seqIDs(20), pages: []int{1, 2, 3, 3, 3}},
		{name: "no jobs: the empty first page is confirmed", srv: &statsServer{}, pageSize: 10, want: nil, pages: []int{1, 1, 1}},
		{name: "an empty page after a capped page is fetched again", srv: &statsServer{ids: seqIDs(25), cap: 7, fault: emptyAt(2)}, pageSize: 10,
			want: seqIDs(25), pages: []int{1, 2, 2, 3, 4, 5, 5, 5}},
		{name: "two empty pages in a row are fetched again", srv: &statsServer{ids: seqIDs(25), cap: 7, fault: emptyAt(3, 4)}, pageSize: 10,
			want: seqIDs(25), pages: []int{1, 2, 3, 3, 3, 4, 5, 5, 5}},
		{
			name: "a capped page repeating the previous page is fetched again",
			srv: &statsServer{ids: seqIDs(25), cap: 7, fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
				if n != 3 {
					return false
				}
				_, _ = w.Write(s.page(page-1, size))
				return true
			}},
			pageSize: 10, want: seqIDs(25), pages: []int{1, 2, 3, 3, 4, 5, 5, 5},
		},
		{
			name: "a page that keeps repeating ends in ErrInconsistentPages",
			srv: &statsServer{ids: seqIDs(25), cap: 7, fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
				if page != 2 {
					return false
				}
				_, _ = w.Write(s.page(1, size))
				return true
			}},
			pageSize: 10, want: seqIDs(7), pages: []int{1, 2, 2, 2, 2}, wantErr: ErrInconsistentPages,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, serve(t, tt.srv))
			got, err := drain(t, env.c.Jobs.AllToEmptyPage(t.Context(), 3973838, tt.pageSize))
			checkListing(t, got, err, tt.wantErr, tt.want, tt.srv.pages, tt.pages)
		})
	}
}

// A server that never answers an empty page (each page a new id, so no page repeats the
// last) ends AllToEmptyPage with an error after maxPagesToEmpty pages, not a loop for ever.
func TestJobsAllToEmptyPageIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("pages a loopback server maxPagesToEmpty times")
	}
	srv := &statsServer{fault: func(s *statsServer, n, page, size int, w http.ResponseWriter) bool {
		_, _ = w.Write([]byte(`[{"id":` + strconv.Itoa(381868700+page) + `,"dataStreamId":3973838,"status":"SUCCESS"}]`))
		return true
	}}
	env := newEnv(t, serve(t, srv))
	got, err := drain(t, env.c.Jobs.AllToEmptyPage(t.Context(), 3973838, 10))
	if err == nil || len(got) != maxPagesToEmpty || len(srv.pages) != maxPagesToEmpty {
		t.Fatalf("%d jobs from %d pages, error %v: want %d of each and an error", len(got), len(srv.pages), err, maxPagesToEmpty)
	}
}

// checkListing checks one listing: the error (or none), every wanted job exactly once,
// and the pages the server was asked for.
func checkListing(t *testing.T, got []int64, err, wantErr error, want []int64, pagesSeen, pages []int) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("want %v, got %v", wantErr, err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if seen := sortedIDs(got); !slices.Equal(seen, sortedIDs(want)) {
		t.Errorf("got %d jobs %v, want %d %v", len(got), seen, len(want), want)
	}
	if len(got) != len(sortedIDs(slices.Compact(sortedIDs(got)))) {
		t.Errorf("a job was yielded twice: %v", got)
	}
	if !slices.Equal(pagesSeen, pages) {
		t.Errorf("server saw pages %v, want %v", pagesSeen, pages)
	}
}
