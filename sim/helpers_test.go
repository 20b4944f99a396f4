package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
)

// start is the manual clock's start in every test: 12:00:30 UTC, half a minute into a
// minute window, so a test's calls of "this minute" do not straddle a window.
var start = time.Date(2024, 7, 13, 12, 0, 30, 0, time.UTC)

// harness is a simulator served over real HTTP under a non-empty base path.
type harness struct {
	t     *testing.T
	sim   *Sim
	clk   *clock.Manual
	base  string // ends in /base
	token string
	hc    *http.Client
}

func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	clk := clock.NewManual(start)
	if o.Clock == nil {
		o.Clock = clk
	} else {
		clk, _ = o.Clock.(*clock.Manual)
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	s := New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	t.Cleanup(srv.Close)
	return &harness{t: t, sim: s, clk: clk, base: srv.URL + "/base", token: s.Tokens()[0], hc: srv.Client()}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the harness token (override with the token option).
func (h *harness) do(method, path string, body any, opts ...func(*http.Request)) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", h.token)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	res, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func withToken(tok string) func(*http.Request) {
	return func(r *http.Request) {
		if tok == "" {
			r.Header.Del("Authorization")
			return
		}
		r.Header.Set("Authorization", tok)
	}
}

// ok fails the test unless the answer has the wanted status, and decodes the body into v.
func (h *harness) ok(r resp, want int, v any) {
	h.t.Helper()
	if r.status != want {
		h.t.Fatalf("status %d, want %d; body %s", r.status, want, truncate(r.body))
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			h.t.Fatalf("decoding %s: %v", truncate(r.body), err)
		}
	}
}

func (h *harness) get(path string, v any) {
	h.t.Helper()
	h.ok(h.do("GET", path, nil), 200, v)
}

func truncate(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// Test-side views of the records, decoded from JSON like any client would.
type tWorkspace struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type tStream struct {
	ID                int64           `json:"id"`
	Name              string          `json:"name"`
	WorkspaceID       int64           `json:"workspaceId"`
	DataSourceID      int64           `json:"dataSourceId"`
	DataSourceName    string          `json:"dataSourceName"`
	Enabled           bool            `json:"enabled"`
	HasData           bool            `json:"hasData"`
	LastUpdate        *int64          `json:"lastUpdate"`
	LastRunStatus     json.RawMessage `json:"lastRunStatus"`
	LastRowsRetrieved int64           `json:"lastRowsRetrieved"`
	ProcessedRows     int64           `json:"processedRows"`
	LastDataDate      *string         `json:"lastDataDate"`
	RetrievalHour     *int            `json:"retrievalPeriodHour"`
	RunOnlyWorkflow   bool            `json:"runOnlyAsPartOfWorkflow"`
	CustomAttribute1  string          `json:"customAttribute1"`
	Config            json.RawMessage `json:"config"`
	UpdateTime        int64           `json:"updateTime"`
	UpdateUserID      int64           `json:"updateUserId"`
	CreateTime        int64           `json:"createTime"`
}

type tJob struct {
	ID            int64   `json:"id"`
	DataStreamID  int64   `json:"dataStreamId"`
	Status        string  `json:"status"`
	StatusReason  *string `json:"statusReason"`
	DataStartDate string  `json:"dataStartDate"`
	DataEndDate   string  `json:"dataEndDate"`
	Start         *int64  `json:"startExecutionTime"`
	End           *int64  `json:"endExecutionTime"`
	UserID        int64   `json:"userId"`
	ProcessLog    string  `json:"processLog"`
}

func decodeAll[T any](t *testing.T, raws []json.RawMessage) []T {
	t.Helper()
	out := make([]T, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatalf("decoding %s: %v", truncate(r), err)
		}
	}
	return out
}

// firstStream returns a live stream of the truth that matches keep.
func firstStream(t *testing.T, s *Sim, keep func(tStream) bool) tStream {
	t.Helper()
	for _, st := range decodeAll[tStream](t, s.Truth().Streams) {
		if keep(st) {
			return st
		}
	}
	t.Fatal("no stream matches")
	return tStream{}
}

func apiStream(st tStream) bool { return st.DataSourceName != "TotalConnect" }
