package datorama

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// The fuzz targets decode arbitrary bytes the way the client decodes answers. They must
// never panic; when a decode succeeds the result must be whole: its Raw is valid JSON,
// every record has its id, and decoding Raw again gives the same record. The seed
// corpora under testdata/fuzz/<target>/ and the samples under testdata/ run in every
// plain `go test`.

// addSamples seeds f with the sample files, and with each element of those that are
// arrays.
func addSamples(f *testing.F, names ...string) {
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		var elems []json.RawMessage
		if json.Unmarshal(b, &elems) == nil {
			for _, e := range elems {
				f.Add([]byte(e))
			}
		}
	}
}

// fuzzOne checks decodeRecord for one record type.
func fuzzOne[T any, P model[T]](f *testing.F, raw func(*T) json.RawMessage, samples ...string) {
	addSamples(f, samples...)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeRecord[T, P](b, "record", nil)
		if err != nil {
			if v != nil {
				t.Fatal("a record came back with an error")
			}
			return
		}
		checkWhole[T, P](t, v, raw)
	})
}

// fuzzList checks decodeRecords for one record type.
func fuzzList[T any, P model[T]](f *testing.F, raw func(*T) json.RawMessage, samples ...string) {
	addSamples(f, samples...)
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := decodeRecords[T, P](b, "records", nil)
		if err != nil {
			if list != nil {
				t.Fatal("a list came back with an error")
			}
			return
		}
		ids := map[int64]bool{}
		for i := range list {
			checkWhole[T, P](t, &list[i], raw)
			if id, _ := P(&list[i]).key(); id != 0 {
				if ids[id] {
					t.Fatalf("id %d decoded twice", id)
				}
				ids[id] = true
			}
		}
	})
}

func checkWhole[T any, P model[T]](t *testing.T, v *T, raw func(*T) json.RawMessage) {
	t.Helper()
	if id, _ := P(v).key(); hasID[T]() && id <= 0 {
		t.Fatalf("record without id: %+v", v)
	}
	r := raw(v)
	if !json.Valid(r) {
		t.Fatalf("Raw is not valid JSON: %q", r)
	}
	again, err := decodeRecord[T, P](r, "record", nil)
	if err != nil {
		t.Fatalf("Raw does not decode again: %v", err)
	}
	if a, b := dump(v), dump(again); a != b {
		t.Fatalf("decoding Raw again differs:\n%s\n---\n%s", a, b)
	}
}

func FuzzDecodeJob(f *testing.F) {
	fuzzOne(f, func(j *Job) json.RawMessage { return j.Raw }, "stats_page.json", "jobs_variants.json", "job_id_string.json")
}

func FuzzDecodeJobsPage(f *testing.F) {
	fuzzList(f, func(j *Job) json.RawMessage { return j.Raw }, "stats_page.json", "jobs_variants.json", "stats_truncated.json", "stats_without_id.json")
}

func FuzzDecodeStream(f *testing.F) {
	fuzzOne(f, func(s *Stream) json.RawMessage { return s.Raw }, "streams.json", "streams_variants.json")
}

func FuzzDecodeStreams(f *testing.F) {
	fuzzList(f, func(s *Stream) json.RawMessage { return s.Raw }, "streams.json", "streams_variants.json")
}

func FuzzDecodeWorkspace(f *testing.F) {
	fuzzOne(f, func(w *Workspace) json.RawMessage { return w.Raw }, "workspaces.json", "workspace_one.json")
}

func FuzzDecodeStreamStatus(f *testing.F) {
	fuzzList(f, func(s *StreamStatus) json.RawMessage { return s.Raw }, "stream_status_bulk.json")
}

func FuzzDecodeHarmonizedDimension(f *testing.F) {
	fuzzOne(f, func(h *HarmonizedDimension) json.RawMessage { return h.Raw }, "harmonized_dimensions.json")
}

func FuzzDecodePattern(f *testing.F) {
	fuzzOne(f, func(p *Pattern) json.RawMessage { return p.Raw }, "patterns.json")
}

func FuzzDecodeCalculatedMeasurement(f *testing.F) {
	fuzzOne(f, func(m *CalculatedMeasurement) json.RawMessage { return m.Raw }, "calculated_measurements.json")
}

func FuzzDecodeConnector(f *testing.F) {
	fuzzOne(f, func(c *Connector) json.RawMessage { return c.Raw }, "connector.json")
}

func FuzzDecodeDashboardHierarchy(f *testing.F) {
	fuzzOne(f, func(d *DashboardHierarchy) json.RawMessage { return d.Raw }, "dashboards_hierarchy.json")
}

func FuzzDecodeQueryResult(f *testing.F) {
	addSamples(f, "query_response.json", "query_response_errors.json", "query_batch_response.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeValue[QueryResult](b, "query result")
		if err != nil {
			return
		}
		if !json.Valid(q.Raw) {
			t.Fatalf("Raw is not valid JSON: %q", q.Raw)
		}
		again, err := decodeValue[QueryResult](q.Raw, "query result")
		if err != nil || dump(q) != dump(again) {
			t.Fatalf("decoding Raw again: %v", err)
		}
	})
}

func FuzzDecodeFields(f *testing.F) {
	addSamples(f, "dimensions.json", "dimensions_list.json", "measurements.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, err := decodeFields(b, "fields")
		if err != nil {
			return
		}
		for i, fl := range fields {
			if fl.SystemName == "" || !json.Valid(fl.Raw) {
				t.Fatalf("field %d incomplete: %+v", i, fl)
			}
			if i > 0 && fields[i-1].SystemName > fl.SystemName {
				t.Fatalf("not sorted at %d", i)
			}
		}
	})
}

func FuzzDecodeMapping(f *testing.F) {
	addSamples(f, "mapping.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMapping(b, 1)
		if err != nil {
			return
		}
		if !json.Valid(m.Raw) || firstByte(m.Raw) != '{' {
			t.Fatalf("mapping Raw %q", m.Raw)
		}
	})
}

func FuzzDecodeQueryRequest(f *testing.F) {
	addSamples(f, "query_request.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		var q QueryRequest
		if json.Unmarshal(b, &q) != nil {
			return
		}
		wire, err := json.Marshal(q)
		if err != nil {
			t.Fatalf("a decoded query does not encode: %v", err)
		}
		var again QueryRequest
		if err := json.Unmarshal(wire, &again); err != nil {
			t.Fatalf("the encoded query does not decode: %v\n%s", err, wire)
		}
		// Empty and absent lists are the same on the wire (omitempty), so compare wires.
		if wire2, _ := json.Marshal(again); !bytes.Equal(wire, wire2) {
			t.Fatalf("query changed on the wire:\n%s\n---\n%s", wire, wire2)
		}
	})
}

// FuzzErrorMessage: any error body gives a bounded, token-free message.
func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`{"errors": ["Too Many Requests"]}`))
	f.Add([]byte(`<html><body>` + testToken + `</body></html>`))
	f.Add([]byte(`{"errors": [{"message": {"deep": [1, 2]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := errorMessage(b, testToken)
		if len(m) > 310 {
			t.Fatalf("message of %d bytes", len(m))
		}
		if bytes.Contains([]byte(m), []byte(testToken)) {
			t.Fatal("token in the message")
		}
	})
}

func FuzzParseRate(f *testing.F) {
	f.Add("57", "1626178860000", "18422", "1626220800000", "1626178860000", "1626220800000")
	f.Add("", "", "", "", "", "")
	f.Add("-1", "1626178860", "abc", "1e12", "99999999999999999999", " 7 ")
	f.Fuzz(func(t *testing.T, platRem, platReset, dailyRem, dailyReset, rlReset, dailyRest string) {
		h := http.Header{}
		set := func(k, v string) {
			if v != "" {
				h[k] = []string{v}
			}
		}
		set(HeaderPlatformRemaining, platRem)
		set(HeaderPlatformReset, platReset)
		set(HeaderDailyRemaining, dailyRem)
		set(HeaderDailyReset, dailyReset)
		set(HeaderRateLimitReset, rlReset)
		set(HeaderDailyQuotaRest, dailyRest)
		r := ParseRate(h)
		if r.Platform.Remaining < 0 || r.Daily.Remaining < 0 {
			t.Fatalf("negative remaining: %+v", r)
		}
		if r.Platform.HasRemaining && !r.Platform.Known {
			t.Fatal("HasRemaining without Known")
		}
		if len(r.Warnings) > 6 {
			t.Fatalf("%d warnings for 6 headers", len(r.Warnings))
		}
		_ = rateWait(r, Platform, testStart, 1)
	})
}
