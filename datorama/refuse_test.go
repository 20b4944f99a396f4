package datorama

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestImpossibleRecordsAreRefused: an answer holding a record with an impossible field
// is refused whole with a *RecordError naming the record's index, its id when it has
// one, the field and the value as sent; a read is not sent again (the same request gets
// the same records), and the error says which list it was.
func TestImpossibleRecordsAreRefused(t *testing.T) {
	const ws, stream = 27405, 3973838
	job := func(fields string) string {
		return `{"id": 381868732, "dataStreamId": 3973838, "status": "SUCCESS", "dataStartDate": "2021-06-04", ` +
			`"dataEndDate": "2021-06-04", "startExecutionTime": 1626178800000, "endExecutionTime": 1626179400000` + fields + `}`
	}
	page := func(second string) string { return "[" + job("") + ", " + second + "]" }
	jobs := func(c *Client) error { _, err := c.Jobs.Page(context.Background(), stream, 10, 1); return err }
	streams := func(c *Client) error { _, err := c.Streams.List(context.Background(), ws); return err }
	workspaces := func(c *Client) error { _, err := c.Workspaces.List(context.Background()); return err }
	tests := []struct {
		name    string
		call    func(*Client) error
		body    string
		context string // what the error must say of the call
		want    RecordError
	}{
		{"workspace without id", workspaces, `[{"id": 5, "name": "a"}, {"name": "ghost"}]`, "listing workspaces",
			RecordError{What: "workspaces", Index: 1, Field: "id", Value: ""}},
		{"negative id", workspaces, `[{"id": 5}, {"id": -3, "name": "neg"}]`, "listing workspaces",
			RecordError{What: "workspaces", Index: 1, Field: "id", Value: "-3"}},
		{"null id", streams, `[{"id": null, "name": "s"}]`, "listing streams of workspace 27405",
			RecordError{What: "data streams", Index: 0, Field: "id", Value: "null"}},
		{"zero id", streams, `[{"id": 0}]`, "listing streams of workspace 27405",
			RecordError{What: "data streams", Index: 0, Field: "id", Value: "0"}},
		{"id not an integer", streams, `[{"id": 3973838.5}]`, "listing streams of workspace 27405",
			RecordError{What: "data streams", Index: 0, Field: "id", Value: "3973838.5"}},
		{"id a word", streams, `[{"id": "abc"}]`, "listing streams of workspace 27405",
			RecordError{What: "data streams", Index: 0, Field: "id", Value: `"abc"`}},
		{"stream of another workspace", streams, `[{"id": 1, "workspaceId": 27405}, {"id": 2, "workspaceId": 99}]`,
			"listing streams of workspace 27405", RecordError{What: "data streams", Index: 1, ID: 2, Field: "workspaceId", Value: "99"}},
		{"job status null", jobs, page(`{"id": 381868733, "status": null}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "status", Value: "null"}},
		{"job status empty", jobs, page(`{"id": 381868733, "status": ""}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "status", Value: `""`}},
		{"job status missing", jobs, page(`{"id": 381868733}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "status", Value: ""}},
		{"job status a number", jobs, page(`{"id": 381868733, "status": 5}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "status", Value: "5"}},
		{"job date not yyyy-MM-dd", jobs, page(`{"id": 381868733, "status": "PENDING", "dataStartDate": "04/06/2021"}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "dataStartDate", Value: `"04/06/2021"`}},
		{"job date empty", jobs, page(`{"id": 381868733, "status": "PENDING", "dataEndDate": ""}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "dataEndDate", Value: `""`}},
		{"job date impossible", jobs, page(`{"id": 381868733, "status": "PENDING", "dataEndDate": "2021-02-30"}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "dataEndDate", Value: `"2021-02-30"`}},
		{"negative epoch time", jobs, page(`{"id": 381868733, "status": "PENDING", "startExecutionTime": -1626178800000}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "startExecutionTime", Value: "-1626178800000"}},
		{"fractional epoch time", jobs, page(`{"id": 381868733, "status": "PENDING", "endExecutionTime": 1626178800000.5}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "endExecutionTime", Value: "1626178800000.5"}},
		{"job of another stream", jobs, page(`{"id": 381868733, "status": "PENDING", "dataStreamId": 42}`), "jobs of stream 3973838",
			RecordError{What: "jobs", Index: 1, ID: 381868733, Field: "dataStreamId", Value: "42"}},
		{"a record that is not an object", workspaces, `[{"id": 5}, "six"]`, "listing workspaces",
			RecordError{What: "workspaces", Index: 1}},
		{"a token in the value is scrubbed", workspaces, `[{"id": "` + testToken + `"}]`, "listing workspaces",
			RecordError{What: "workspaces", Index: 0, Field: "id", Value: `"[token]"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(answer(200, tt.body), answer(200, tt.body))
			env := newEnv(t, serve(t, s))
			err := tt.call(env.c)
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("want a *RecordError, got %v", err)
			}
			type key struct {
				What         string
				Index        int
				ID           int64
				Field, Value string
			}
			if got, want := (key{re.What, re.Index, re.ID, re.Field, re.Value}), (key{tt.want.What, tt.want.Index, tt.want.ID, tt.want.Field, tt.want.Value}); got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if re.Reason == "" {
				t.Error("no reason given")
			}
			if s.count() != 1 {
				t.Errorf("%d attempts, want 1: a refused answer is not asked again", s.count())
			}
			msg := err.Error()
			for _, part := range []string{tt.context, "index " + strconv.Itoa(tt.want.Index), "field " + tt.want.Field} {
				if part != "field " && !strings.Contains(msg, part) {
					t.Errorf("error %q does not say %q", msg, part)
				}
			}
			if strings.Contains(msg, testToken) {
				t.Errorf("the token leaked into %q", msg)
			}
		})
	}
}

// TestPossibleRecordsAreKept: what the facts file leaves open is not impossible: a
// status nobody has seen, ids and times as numeric strings, null dates and times, a
// date with a time part, unknown fields (kept in Raw).
func TestPossibleRecordsAreKept(t *testing.T) {
	body := `[{"id": "381868740", "dataStreamId": "3973838", "status": "CANCELLED", "dataStartDate": "2021-06-04 00:00:00.0",
		"dataEndDate": null, "startExecutionTime": "1626178800000", "endExecutionTime": 1.6261794e12, "futureField": {"a": [1]}},
		{"id": 381868741, "status": "SKIPPED", "startExecutionTime": null}]`
	env := newEnv(t, serve(t, newScript(answer(200, body))))
	jobs, err := env.c.Jobs.Page(t.Context(), 3973838, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != 381868740 || jobs[0].Status != "CANCELLED" || jobs[1].Status != "SKIPPED" ||
		jobs[0].DataStartDate.String() != "2021-06-04" || jobs[0].EndExecutionTime.Millis() != 1626179400000 ||
		!strings.Contains(string(jobs[0].Raw), `"futureField"`) {
		t.Errorf("decoded %+v", jobs)
	}
}

// TestRepeatedIDsAreRefused: every list the client decodes refuses an answer holding
// two records under one id (or one system name, for dimensions and measurements) with a
// *DuplicateError naming the id and both indexes, and is not asked again.
func TestRepeatedIDsAreRefused(t *testing.T) {
	const ws, stream = 27405, 3973838
	ctx := context.Background()
	tests := []struct {
		name    string
		call    func(*Client) error
		body    string
		context string
		want    DuplicateError
	}{
		{"workspaces", func(c *Client) error { _, err := c.Workspaces.List(ctx); return err },
			`[{"id": 5}, {"id": 6}, {"id": 5}]`, "listing workspaces", DuplicateError{What: "workspaces", ID: 5, First: 0, Second: 2}},
		{"streams", func(c *Client) error { _, err := c.Streams.List(ctx, ws); return err },
			`[{"id": 7}, {"id": "7"}]`, "listing streams of workspace 27405", DuplicateError{What: "data streams", ID: 7, First: 0, Second: 1}},
		{"bulk status", func(c *Client) error { _, err := c.Streams.BulkStatus(ctx, ws, []int64{7, 8}); return err },
			`[{"id": 7, "runStatus": "SUCCESS"}, {"id": 7, "runStatus": "FAILURE"}]`, "bulk status of 2 streams of workspace 27405",
			DuplicateError{What: "stream statuses", ID: 7, First: 0, Second: 1}},
		{"stats page", func(c *Client) error { _, err := c.Jobs.Page(ctx, stream, 10, 2); return err },
			`[{"id": 9, "status": "SUCCESS"}, {"id": 10, "status": "SUCCESS"}, {"id": 9, "status": "FAILURE"}]`, "jobs of stream 3973838, page 2",
			DuplicateError{What: "jobs", ID: 9, First: 0, Second: 2}},
		{"dimensions, a key twice", func(c *Client) error { _, err := c.Metadata.Dimensions(ctx, ws, ""); return err },
			`{"A": {"systemName": "A"}, "B": {"systemName": "B"}, "A": {"systemName": "A"}}`, "listing dimensions of workspace 27405",
			DuplicateError{What: "dimensions", Key: "A", First: 0, Second: 2}},
		{"measurements as a list", func(c *Client) error { _, err := c.Metadata.Measurements(ctx, ws, ""); return err },
			`[{"systemName": "CLICKS"}, {"systemName": "CLICKS"}]`, "listing measurements of workspace 27405",
			DuplicateError{What: "measurements", Key: "CLICKS", First: 0, Second: 1}},
		{"harmonized dimensions", func(c *Client) error { _, err := c.Metadata.HarmonizedDimensions(ctx, ws); return err },
			`[{"id": 3}, {"id": 3}]`, "listing harmonized dimensions of workspace 27405", DuplicateError{What: "harmonized dimensions", ID: 3, First: 0, Second: 1}},
		{"patterns", func(c *Client) error { _, err := c.Metadata.Patterns(ctx, ws); return err },
			`[{"id": 3}, {"id": 4}, {"id": 4}]`, "listing patterns of workspace 27405", DuplicateError{What: "patterns", ID: 4, First: 1, Second: 2}},
		{"calculated measurements", func(c *Client) error { _, err := c.Metadata.CalculatedMeasurements(ctx, ws); return err },
			`[{"id": 3}, {"id": 3}]`, "listing calculated measurements of workspace 27405",
			DuplicateError{What: "calculated measurements", ID: 3, First: 0, Second: 1}},
		{"mapping, a member twice", func(c *Client) error { _, err := c.Mappings.Get(ctx, stream); return err },
			`{"fields": [], "dataStreamId": 3973838, "fields": [{"a": 1}]}`, "getting mapping of stream 3973838",
			DuplicateError{What: "mapping of stream 3973838", Key: "fields", First: 0, Second: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(answer(200, tt.body), answer(200, tt.body))
			env := newEnv(t, serve(t, s))
			err := tt.call(env.c)
			var de *DuplicateError
			if !errors.As(err, &de) {
				t.Fatalf("want a *DuplicateError, got %v", err)
			}
			if *de != tt.want {
				t.Errorf("got  %+v\nwant %+v", *de, tt.want)
			}
			if s.count() != 1 {
				t.Errorf("%d attempts, want 1", s.count())
			}
			msg := err.Error()
			for _, part := range []string{tt.context, fmt.Sprintf("index %d", tt.want.First), fmt.Sprintf("index %d", tt.want.Second)} {
				if !strings.Contains(msg, part) {
					t.Errorf("error %q does not say %q", msg, part)
				}
			}
		})
	}
}

// TestFieldsKeyedAgainstTheirSystemName: a dimension listed under one key whose
// systemName says another is impossible; a mapping naming another stream too.
func TestFieldsKeyedAgainstTheirSystemName(t *testing.T) {
	env := newEnv(t, serve(t, newScript(answer(200, `{"A": {"systemName": "A"}, "B": {"systemName": "C"}}`))))
	_, err := env.c.Metadata.Dimensions(t.Context(), 1, "")
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 1 || re.Field != "systemName" || re.Value != `"C"` {
		t.Errorf("want a *RecordError on systemName of index 1, got %v", err)
	}
	env = newEnv(t, serve(t, newScript(answer(200, `{"dataStreamId": 12, "fields": []}`))))
	_, err = env.c.Mappings.Get(t.Context(), 11)
	if !errors.As(err, &re) || re.Field != "dataStreamId" || re.Value != "12" {
		t.Errorf("want a *RecordError on dataStreamId, got %v", err)
	}
}

// TestRefusedWritesStayUncertain: a process whose 2xx answer holds an impossible job
// reached the server, so its error says the outcome is unknown and it is not resent.
func TestRefusedWritesStayUncertain(t *testing.T) {
	s := newScript(answer(200, `[{"id": 381868732, "status": null}]`), answer(200, `[]`))
	env := newEnv(t, serve(t, s))
	start, _ := ParseDate("2021-06-04")
	_, err := env.c.Jobs.Process(t.Context(), 3973838, start, start)
	var re *RecordError
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &re) || re.Field != "status" {
		t.Errorf("want ErrOutcomeUnknown with the *RecordError, got %v", err)
	}
	if s.count() != 1 {
		t.Errorf("%d attempts, want 1", s.count())
	}
}

// TestBodyBound: a stats page may be as large as pageSize records of jobRecordCeiling
// (at least minPageBody); a larger one is refused with a *BodyTooLargeError that names
// the endpoint, the bound and the size, unread when its Content-Length says so, and it
// is not asked again.
func TestBodyBound(t *testing.T) {
	record := func(log int) string {
		return `{"id": 1, "status": "SUCCESS", "processLog": "` + strings.Repeat("x", log) + `"}`
	}
	chunked := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			for i := 0; i < len(body); i += 4096 {
				_, _ = w.Write([]byte(body[i:min(i+4096, len(body))]))
				w.(http.Flusher).Flush()
			}
		}
	}
	const size = 100 // a page of 100 may be 6.25 MiB
	bound := int64(size) * jobRecordCeiling
	under := "[" + record(int(bound)-200) + "]"
	over := "[" + record(int(bound)+10) + "]"
	tests := []struct {
		name     string
		step     http.HandlerFunc
		wantSize int64 // -1: refused after reading the bound; 0: accepted
	}{
		{"just under the bound", answer(200, under), 0},
		{"over, announced", answerWith(200, map[string]string{"Content-Length": strconv.Itoa(len(over))}, over), int64(len(over))},
		{"over, chunked", chunked(over), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(tt.step, tt.step)
			env := newEnv(t, serve(t, s))
			jobs, err := env.c.Jobs.Page(t.Context(), 3973838, size, 1)
			if tt.wantSize == 0 {
				if err != nil || len(jobs) != 1 {
					t.Fatalf("a page under the bound: %d jobs, %v", len(jobs), err)
				}
				return
			}
			var tl *BodyTooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("want a *BodyTooLargeError, got %v", err)
			}
			want := BodyTooLargeError{Method: "POST", PathTemplate: "/v1/data-streams/api/{id}/stats", Limit: bound, Size: tt.wantSize}
			if *tl != want {
				t.Errorf("got %+v, want %+v", *tl, want)
			}
			for _, part := range []string{"/v1/data-streams/api/{id}/stats", "6.25 MiB", "larger than"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if s.count() != 1 {
				t.Errorf("%d attempts, want 1", s.count())
			}
		})
	}
	// The bound follows the request, between its floor and the platform ceiling.
	for _, tt := range []struct {
		n    int
		want int64
	}{{1, minPageBody}, {100, 100 * jobRecordCeiling}, {800, 800 * jobRecordCeiling}, {10000, maxPlatformBody}} {
		if got := pageBound(tt.n, jobRecordCeiling); got != tt.want {
			t.Errorf("pageBound(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}
