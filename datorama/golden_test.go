package datorama

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenDecoders decode each sample answer exactly as the client does. The samples are
// the facts file's "Sample JSON" blocks verbatim (workspaces, streams, …, dimensions)
// plus variants for the shapes the facts file leaves open.
var goldenDecoders = map[string]func([]byte) (any, error){
	"workspaces.json":            func(b []byte) (any, error) { return decodeRecords[Workspace](b, "workspaces", nil) },
	"workspace_one.json":         func(b []byte) (any, error) { return decodeRecord[Workspace](b, "workspace", nil) },
	"streams.json":               func(b []byte) (any, error) { return decodeRecords[Stream](b, "data streams", nil) },
	"streams_variants.json":      func(b []byte) (any, error) { return decodeRecords[Stream](b, "data streams", nil) },
	"stream_status_bulk.json":    func(b []byte) (any, error) { return decodeRecords[StreamStatus](b, "stream statuses", nil) },
	"stats_page.json":            func(b []byte) (any, error) { return decodeRecords(b, "jobs", jobOf(0)) },
	"jobs_variants.json":         func(b []byte) (any, error) { return decodeRecords(b, "jobs", jobOf(0)) },
	"job_id_string.json":         func(b []byte) (any, error) { return decodeRecords(b, "jobs", jobOf(0)) },
	"stats_truncated.json":       func(b []byte) (any, error) { return decodeRecords(b, "jobs", jobOf(0)) },
	"stats_without_id.json":      func(b []byte) (any, error) { return decodeRecords(b, "jobs", jobOf(0)) },
	"process_response.json":      func(b []byte) (any, error) { return decodeRecordsOrOne(b, "created jobs", jobOf(0)) },
	"rerun_response.json":        func(b []byte) (any, error) { return decodeRecordsOrOne(b, "created jobs", jobOf(0)) },
	"query_response.json":        func(b []byte) (any, error) { return decodeValue[QueryResult](b, "query result") },
	"query_response_errors.json": func(b []byte) (any, error) { return decodeValue[QueryResult](b, "query result") },
	"query_batch_response.json":  func(b []byte) (any, error) { return decodeValues[QueryResult](b, "query batch results") },
	"dimensions.json":            func(b []byte) (any, error) { return decodeFields(b, "dimensions") },
	"dimensions_list.json":       func(b []byte) (any, error) { return decodeFields(b, "dimensions") },
	"measurements.json":          func(b []byte) (any, error) { return decodeFields(b, "measurements") },
	"mapping.json":               func(b []byte) (any, error) { return decodeMapping(b, 3973838) },
	"connector.json":             func(b []byte) (any, error) { return decodeRecord[Connector](b, "connector", nil) },
	"dashboards_hierarchy.json":  func(b []byte) (any, error) { return decodeRecord[DashboardHierarchy](b, "hierarchy", nil) },
	"harmonized_dimensions.json": func(b []byte) (any, error) {
		return decodeRecords[HarmonizedDimension](b, "harmonized dimensions", nil)
	},
	"patterns.json": func(b []byte) (any, error) { return decodeRecords[Pattern](b, "patterns", nil) },
	"calculated_measurements.json": func(b []byte) (any, error) {
		return decodeRecords[CalculatedMeasurement](b, "calculated measurements", nil)
	},
	"query_request.json": func(b []byte) (any, error) {
		var q QueryRequest
		if err := json.Unmarshal(b, &q); err != nil {
			return nil, err
		}
		wire, err := json.Marshal(q)
		return struct {
			Decoded QueryRequest
			Wire    json.RawMessage // what Query.Run sends for it
		}{q, wire}, err
	},
	"rate_200.headers": func(b []byte) (any, error) { return ParseRate(parseHeaderBlock(b)), nil },
	"rate_429.headers": func(b []byte) (any, error) { return ParseRate(parseHeaderBlock(b)), nil },
}

// requestSamples are samples of request bodies; TestRequestBodiesMatchSamples checks
// the client sends them.
var requestSamples = map[string]bool{"process_many_request.json": true, "patch_request.json": true}

func TestGoldenDecoding(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	headers, _ := filepath.Glob("testdata/*.headers")
	files = append(files, headers...)
	if len(files) < len(goldenDecoders) {
		t.Fatalf("found %d sample files, want at least %d", len(files), len(goldenDecoders))
	}
	for _, path := range files {
		name := filepath.Base(path)
		if requestSamples[name] {
			continue
		}
		decode, ok := goldenDecoders[name]
		if !ok {
			t.Errorf("%s has no decoder in goldenDecoders", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			v, err := decode(b)
			var got string
			if err != nil {
				got = "error: " + err.Error() + "\n"
			} else {
				got = dump(v)
			}
			golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenDecoding -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("decoding %s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, golden, got, want)
			}
		})
	}
}

// TestGoldenInvariants states, independently of the golden files, the properties the
// brief asks of decoding, so that a careless -update cannot bless a regression.
func TestGoldenInvariants(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	streams, err := decodeRecords[Stream](read("streams.json"), "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := streams[0]; s.LastRunStatus.Bool == nil || *s.LastRunStatus.Bool || !s.LastRunStatus.Failed() ||
		s.CreateTime.Millis() != 1619827200000 || s.LastDataDate.String() != "2021-07-12" || s.ParentInstanceID != nil {
		t.Errorf("streams.json decoded wrong: %+v", s)
	}
	variants, err := decodeRecords[Stream](read("streams_variants.json"), "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	v0, v1, v2 := variants[0], variants[1], variants[2]
	if v0.LastRunStatus.String != "FAILURE" || !v0.LastRunStatus.Failed() || v0.WorkspaceID != 27405 || v0.DataSourceID != 512 ||
		v0.CreateTime.Millis() != 1619827200000 || v0.ParentInstanceID == nil || *v0.ParentInstanceID != 3973000 {
		t.Errorf("string lastRunStatus / string ids decoded wrong: %+v", v0)
	}
	if !bytes.Contains(v0.Raw, []byte(`"futureField"`)) || !bytes.Contains(v0.Raw, []byte(`"customAttribute3"`)) {
		t.Errorf("unknown fields lost from Raw: %s", v0.Raw)
	}
	if !v1.CreateTime.IsZero() || !v1.LastUpdate.IsZero() || !v1.LastDataDate.IsZero() || v1.LastRunStatus.Failed() || !v1.IsTotalConnect() {
		t.Errorf("null times decoded wrong: %+v", v1)
	}
	if v2.LastRunStatus.Raw != nil || v2.LastRunStatus.Failed() {
		t.Errorf("null lastRunStatus decoded wrong: %+v", v2.LastRunStatus)
	}
	if _, err := decodeRecords(read("stats_truncated.json"), "jobs", jobOf(0)); err == nil {
		t.Error("a truncated array decoded without error")
	}
	if _, err := decodeRecords(read("stats_without_id.json"), "jobs", jobOf(0)); err == nil {
		t.Error("a job without id decoded without error")
	}
	q, err := decodeValue[QueryResult](read("query_response_errors.json"), "q")
	if err != nil || !q.Failed() {
		t.Errorf("query errors: %v %+v", err, q)
	}
	ok, err := decodeValue[QueryResult](read("query_response.json"), "q")
	if err != nil || ok.Failed() || len(ok.Rows) != 2 || string(ok.Rows[0][1]) != "184233" {
		t.Errorf("query answer: %v %+v", err, ok)
	}
}

// parseHeaderBlock reads a sample response head ("HTTP/1.1 200 OK" and header lines).
func parseHeaderBlock(b []byte) http.Header {
	h := http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			first = false
			continue
		}
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h
}

// dump renders a decoded value for a golden file: one line per field, typed values in
// readable form (times in RFC 3339, dates as yyyy-MM-dd, raw JSON compacted).
func dump(v any) string {
	var b strings.Builder
	dumpValue(&b, "$", reflect.ValueOf(v))
	return b.String()
}

var (
	typTimestamp = reflect.TypeOf(Timestamp{})
	typDate      = reflect.TypeOf(Date{})
	typRunStatus = reflect.TypeOf(RunStatus{})
	typRaw       = reflect.TypeOf(json.RawMessage{})
	typTime      = reflect.TypeOf(time.Time{})
	typHeader    = reflect.TypeOf(http.Header{})
)

func dumpValue(b *strings.Builder, prefix string, v reflect.Value) {
	line := func(s string) { fmt.Fprintf(b, "%s = %s\n", prefix, s) }
	if !v.IsValid() {
		line("<invalid>")
		return
	}
	switch v.Type() {
	case typTimestamp:
		ts := v.Interface().(Timestamp)
		if ts.IsZero() {
			line("zero")
		} else {
			line(ts.UTC().Format(time.RFC3339Nano))
		}
		return
	case typDate:
		d := v.Interface().(Date)
		if d.IsZero() {
			line("zero")
		} else {
			line(d.String())
		}
		return
	case typRunStatus:
		rs := v.Interface().(RunStatus)
		line(fmt.Sprintf("raw=%s text=%q failed=%v", rawString(rs.Raw), rs.Text(), rs.Failed()))
		return
	case typRaw:
		line(rawString(v.Interface().(json.RawMessage)))
		return
	case typTime:
		t := v.Interface().(time.Time)
		if t.IsZero() {
			line("zero")
		} else {
			line(t.UTC().Format(time.RFC3339Nano))
		}
		return
	case typHeader:
		line(fmt.Sprint(v.Interface()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			line("nil")
			return
		}
		dumpValue(b, prefix, v.Elem())
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			p := prefix + "." + f.Name
			if f.Anonymous {
				p = prefix
			}
			dumpValue(b, p, v.Field(i))
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			line("nil")
			return
		}
		line(fmt.Sprintf("len %d", v.Len()))
		for i := range v.Len() {
			dumpValue(b, fmt.Sprintf("%s[%d]", prefix, i), v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			dumpValue(b, fmt.Sprintf("%s[%v]", prefix, k), v.MapIndex(k))
		}
	case reflect.String:
		line(fmt.Sprintf("%q", v.String()))
	default:
		line(fmt.Sprint(v.Interface()))
	}
}

func rawString(r json.RawMessage) string {
	if r == nil {
		return "nil"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r); err != nil {
		return fmt.Sprintf("invalid JSON %q", string(r))
	}
	return buf.String()
}
