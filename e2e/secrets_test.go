package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver, to read every table of every store file

	"github.com/drextract/drextract/cli"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// canary is the API token of the secrets test: recognisable, and with characters that
// URL escaping and base64 change, so that each encoded form is a distinct needle.
const canary = "dato-api-SECRET/CANARY+e2e=7f3a9c1d5b"

// TestTokenNeverLeaks is issue 7's secrets test. It drives the real CLI in-process with
// a recognisable token through every command that touches the token or the store —
// crawls at debug level, queries, export, status, a dry-run and a real action, a crawl
// under faults, a crawl refused with 401, config check with a token file readable by
// others, and serve with its /status and /metrics — and then looks for the token, in
// plain, URL-escaped, base64 and hex form, in everything they printed or logged, in
// every file under the data directory (DuckDB files and Parquet read through DuckDB,
// since their pages are compressed, and every file's raw bytes besides).
func TestTokenNeverLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dozen commands")
	}
	ctx := context.Background()
	// The account's time is its own, months behind the host's: the commands must follow
	// the API's clock (its Date header) for $now, or failed-jobs-24h finds nothing.
	s := sim.New(sim.Options{Seed: 11, Workspaces: 2, Streams: 16, JobsPerStream: 12, TokenValues: []string{canary},
		PlatformLimit: unlimited, QueryLimit: unlimited, DailyQuota: unlimited, Logger: quietLogger(),
		Clock: clock.NewManual(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))})
	// One stream fails its next run, an hour before the crawls: the act below has a
	// failed job of the last 24 hours to rerun, whatever the generated history holds.
	var first struct{ ID int64 }
	if err := json.Unmarshal(s.Truth().Streams[0], &first); err != nil {
		t.Fatal(err)
	}
	s.Mutate(func(st *sim.State) {
		if err := st.SetStreamOutcome(first.ID, "fail"); err != nil {
			t.Fatal(err)
		}
	})
	s.RunStreams([]int64{first.ID})
	s.Advance(time.Hour)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	defer srv.Close()
	// Another account, whose tokens are not ours: every call is refused with 401.
	other := httptest.NewServer(http.StripPrefix("/base", sim.New(sim.Options{Seed: 12, Workspaces: 1, Streams: 2,
		PlatformLimit: unlimited, QueryLimit: unlimited, DailyQuota: unlimited})))
	defer other.Close()

	dir := t.TempDir()
	t.Chdir(dir) // the commands' relative defaults (./schedules.yaml, ./data) land here
	dataDir := filepath.Join(dir, "data")
	t.Setenv("DATORAMA_TOKEN", canary)
	t.Setenv("DATORAMA_BASE_URL", srv.URL+"/base")

	var outputs []output
	run := func(name string, want []int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		began := time.Now()
		code := cli.DoContext(ctx, append([]string{"--data-dir", dataDir}, args...), strings.NewReader(""), &stdout, &stderr)
		t.Logf("%s: exit %d in %v", name, code, time.Since(began).Round(time.Millisecond))
		outputs = append(outputs, output{name + " stdout", stdout.Bytes()}, output{name + " stderr", stderr.Bytes()})
		if !slices.Contains(want, code) {
			t.Errorf("%s: exit %d, want one of %v; stderr:\n%s", name, code, want, stderr.String())
		}
		return stdout.String() + stderr.String()
	}

	run("extract debug", []int{0}, "extract", "--log-level", "debug")
	run("extract", []int{0}, "extract")
	run("query runs", []int{0}, "query", "--format", "json", "select * from runs")
	run("query api_calls", []int{0}, "query", "--format", "csv", "select * from api_calls")
	run("export", []int{0}, "export", "--log-level", "debug")
	if out := run("status", []int{0}, "status"); !strings.Contains(out, datorama.Fingerprint(canary)) {
		t.Errorf("status does not name the token's fingerprint %s; the check below would prove little:\n%s", datorama.Fingerprint(canary), out)
	}
	run("status probe", []int{0}, "status", "--probe", "--format", "json", "--log-level", "debug")
	run("act dry run", []int{0}, "act", "failed-jobs-24h", "--log-level", "debug")
	reruns := s.Calls().ByEndpoint["POST /v1/data-streams/api/{id}/rerun"]
	run("act --yes", []int{0, 3}, "act", "failed-jobs-24h", "--yes", "--log-level", "debug")
	if s.Calls().ByEndpoint["POST /v1/data-streams/api/{id}/rerun"] == reruns {
		t.Error("act --yes sent no rerun; the test needs an action that reaches the API")
	}
	run("actions log", []int{0}, "actions", "log")

	// No 429 storms: on the wall clock each would wait for the minute to end.
	faults, err := sim.ParseFaults("http500=0.08,reset=0.04,malformed=0.04,html=0.04,onlyreads=true")
	if err != nil {
		t.Fatal(err)
	}
	s.SetFaults(faults)
	run("extract under faults", []int{0, 3}, "extract", "--full", "--log-level", "debug")
	if len(s.Calls().Faults) == 0 {
		t.Error("no fault was injected during the faulted crawl")
	}
	s.SetFaults(sim.Faults{})
	if out := run("extract refused", []int{1, 2, 3}, "extract", "--base-url", other.URL+"/base", "--log-level", "debug"); !strings.Contains(out, "401") {
		t.Errorf("the refused crawl does not report a 401:\n%s", out)
	}

	// A gateway that echoes the request's Authorization header into its error pages, as
	// misconfigured proxies do: a 400 on the stream listings, and a 502 HTML page on the
	// first read of each dimensions list (retried). The client must keep the token out of
	// every message, log line and audit row built from them.
	var echoMu sync.Mutex
	echoed := map[string]bool{}
	echo := httptest.NewServer(http.StripPrefix("/base", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		echoMu.Lock()
		first := !echoed[r.URL.Path]
		echoed[r.URL.Path] = true
		echoMu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/data-streams"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"errors":["rejected request with headers Authorization: %s"]}`, auth)
		case strings.HasSuffix(r.URL.Path, "/dimensions") && first:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "<html><body><h1>502</h1><pre>upstream failed for Authorization=%s</pre></body></html>", auth)
		default:
			s.ServeHTTP(w, r)
		}
	})))
	defer echo.Close()
	if out := run("extract via an echoing gateway", []int{3}, "extract", "--full", "--base-url", echo.URL+"/base", "--log-level", "debug"); !strings.Contains(out, "[token]") {
		t.Errorf("no error message shows the echoed token scrubbed; the gateway did not test the scrubbing:\n%s", out)
	}

	// serve, from a configuration that reads the token from a file others may read.
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(canary+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tokenFile, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "schedules.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
api:
  base_url: %s/base
  tokens:
    - file: %s
store:
  data_dir: %s
budget:
  platform_limit: 1000000
  daily_quota: 100000000
schedules:
  - name: new-year
    cron: "0 0 1 1 *"
    extract: {}
`, srv.URL, tokenFile, dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run("config check", []int{0, 1}, "config", "check", "--config", cfg); !strings.Contains(out, "accessible by group or others") {
		t.Errorf("config check says nothing of the token file readable by others:\n%s", out)
	}
	outputs = append(outputs, serveBriefly(t, ctx, cfg)...)

	needles := secretForms(canary)
	found := scanOutputs(outputs, needles)
	found = append(found, scanDir(t, dataDir, needles)...)
	for _, f := range found {
		t.Errorf("the token leaked: %s", f)
	}
	checkAuditTables(t, filepath.Join(dataDir, load.LiveFile))

	// The scan finds what it looks for: a token planted in each kind of file under the
	// data directory is reported, in the form it was planted.
	for _, tt := range []struct {
		name, form string
		plant      func(t *testing.T) string // returns the planted file
	}{
		{"plain file", "url-query", func(t *testing.T) string {
			p := filepath.Join(dataDir, "ratelimit", "planted.json")
			if err := os.WriteFile(p, []byte(`{"next":"https://x/?token=`+url.QueryEscape(canary)+`"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"zstd Parquet", "plain", func(t *testing.T) string {
			p := filepath.Join(dataDir, "parquet", "planted", "data_0.parquet")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			duckExec(t, "", fmt.Sprintf(`COPY (SELECT range AS id, 'Authorization: ' || '%s' AS header FROM range(5000))
				TO '%s' (FORMAT parquet, COMPRESSION zstd)`, canary, p))
			return p
		}},
		{"DuckDB table", "base64-std+1", func(t *testing.T) string {
			p := filepath.Join(dataDir, "planted.duckdb")
			enc := base64.StdEncoding.EncodeToString(append([]byte{'x'}, canary...))
			duckExec(t, p, fmt.Sprintf(`CREATE TABLE notes AS SELECT range AS id, 'blob ' || '%s' AS body FROM range(20000)`, enc))
			return p
		}},
	} {
		t.Run("planted "+tt.name, func(t *testing.T) {
			p := tt.plant(t)
			defer os.RemoveAll(p)
			hits := scanDir(t, dataDir, needles)
			if !slices.ContainsFunc(hits, func(h string) bool { return strings.Contains(h, p) && strings.Contains(h, "("+tt.form+")") }) {
				t.Errorf("the token planted in %s (%s) was not found; the scan reported %q", p, tt.form, hits)
			}
		})
	}
}

// output is something a command printed or served.
type output struct {
	name string
	data []byte
}

// secretForms are the forms a leaked token could take: as is, URL-escaped, hex, base64
// (standard and URL alphabets, at each of the three byte alignments within a longer
// encoded string, so only characters that depend on the token alone), and a fragment
// that catches a truncated token.
func secretForms(tok string) map[string]string {
	forms := map[string]string{
		"plain":     tok,
		"url-query": url.QueryEscape(tok),
		"url-path":  url.PathEscape(tok),
		"hex":       hex.EncodeToString([]byte(tok)),
		"fragment":  tok[strings.Index(tok, "SECRET") : strings.Index(tok, "SECRET")+13],
	}
	for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding} {
		for off := range 3 {
			b := append(make([]byte, off), tok...)
			e := enc.EncodeToString(b)
			start, end := (8*off+5)/6, 8*len(b)/6
			forms[fmt.Sprintf("base64-%s+%d", name, off)] = e[start:end]
		}
	}
	return forms
}

func scanBytes(where string, data []byte, needles map[string]string) []string {
	var hits []string
	for form, n := range needles {
		if bytes.Contains(data, []byte(n)) {
			hits = append(hits, fmt.Sprintf("%s (%s)", where, form))
		}
	}
	slices.Sort(hits)
	return hits
}

func scanOutputs(outs []output, needles map[string]string) []string {
	var hits []string
	for _, o := range outs {
		hits = append(hits, scanBytes(o.name, o.data, needles)...)
	}
	return hits
}

// scanDir looks for the needles in every file under dir: its raw bytes, and for DuckDB
// and Parquet files every value of every row, read through DuckDB.
func scanDir(t *testing.T, dir string, needles map[string]string) []string {
	t.Helper()
	var hits []string
	files := 0
	// Follows symbolic links: a folder replaced whole may be a link to its newest version.
	var walk func(dir string) error
	walk = func(dir string) error {
		return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					return walk(p + string(filepath.Separator))
				}
			}
			files++
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			hits = append(hits, scanBytes(p, data, needles)...)
			switch {
			case strings.HasSuffix(p, ".duckdb"):
				hits = append(hits, scanDuckDB(t, p, needles)...)
			case strings.HasSuffix(p, ".parquet"):
				hits = append(hits, scanRows(t, p, "SELECT * FROM read_parquet('"+p+"')", needles)...)
			}
			return nil
		})
	}
	if err := walk(dir); err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	if files < 3 {
		t.Fatalf("only %d files under %s; the scan has nothing to look at", files, dir)
	}
	return hits
}

// scanDuckDB reads every table of a DuckDB file.
func scanDuckDB(t *testing.T, path string, needles map[string]string) []string {
	t.Helper()
	db := openDuck(t, "")
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf(`ATTACH '%s' AS f (READ_ONLY)`, path)); err != nil {
		t.Fatalf("attaching %s: %v", path, err)
	}
	rows, err := db.Query(`SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'f'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, fmt.Sprintf(`f."%s"."%s"`, schema, table))
	}
	rows.Close()
	if len(tables) == 0 {
		t.Errorf("%s has no tables", path)
	}
	var hits []string
	for _, table := range tables {
		hits = append(hits, scanRowsIn(t, db, path+" "+table, "SELECT * FROM "+table, needles)...)
	}
	return hits
}

func scanRows(t *testing.T, where, query string, needles map[string]string) []string {
	t.Helper()
	db := openDuck(t, "")
	defer db.Close()
	return scanRowsIn(t, db, where, query, needles)
}

// scanRowsIn renders every value of every row the query returns and looks for the
// needles in it.
func scanRowsIn(t *testing.T, db *sql.DB, where, query string, needles map[string]string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var buf bytes.Buffer
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				buf.Write(b)
			} else {
				fmt.Fprint(&buf, v)
			}
			buf.WriteByte('\t')
		}
		buf.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return scanBytes(where, buf.Bytes(), needles)
}

// checkAuditTables makes sure the audit tables the scan read hold what a leak would be
// in: the calls of every run (fingerprinted), and the refused crawl's error.
func checkAuditTables(t *testing.T, live string) {
	t.Helper()
	db := openDuck(t, "")
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf(`ATTACH '%s' AS f (READ_ONLY)`, live)); err != nil {
		t.Fatal(err)
	}
	var calls, fingerprinted, refused, errors int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE token_fingerprint = $1),
		count(*) FILTER (WHERE status = 401), count(*) FILTER (WHERE error <> '') FROM f.api_calls`,
		datorama.Fingerprint(canary)).Scan(&calls, &fingerprinted, &refused, &errors); err != nil {
		t.Fatal(err)
	}
	var incomplete int
	if err := db.QueryRow(`SELECT count(*) FROM f.runs WHERE status <> 'ok'`).Scan(&incomplete); err != nil {
		t.Fatal(err)
	}
	if calls == 0 || fingerprinted == 0 || refused == 0 || errors == 0 || incomplete == 0 {
		t.Errorf("api_calls has %d rows, %d with the token's fingerprint, %d refused with 401, %d with an error; runs %d not ok: "+
			"the scan read too little to prove anything", calls, fingerprinted, refused, errors, incomplete)
	}
}

func openDuck(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func duckExec(t *testing.T, path, stmt string) {
	t.Helper()
	db := openDuck(t, path)
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// serveBriefly runs `drextract serve` until its endpoint answered /healthz, /status and
// /metrics, then stops it as SIGTERM would, and returns what it printed and served.
func serveBriefly(t *testing.T, ctx context.Context, cfg string) []output {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.DoContext(sctx, []string{"serve", "--config", cfg, "--listen", addr, "--log-level", "debug"},
			strings.NewReader(""), &stdout, &stderr)
	}()
	get := func(path string) ([]byte, int, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return b, resp.StatusCode, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, code, err := get("/healthz"); err == nil && code == http.StatusOK {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before answering:\n%s", code, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer /healthz within 30s:\n%s", stderr.String())
		}
	}
	var outs []output
	for _, path := range []string{"/status", "/metrics"} {
		b, code, err := get(path)
		if err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %v", path, code, err)
		}
		outs = append(outs, output{"serve " + path, b})
		if path == "/status" && !bytes.Contains(b, []byte(datorama.Fingerprint(canary))) {
			t.Errorf("/status does not name the token's fingerprint; the check would prove little:\n%s", b)
		}
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d after its context ended:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of its context ending")
	}
	return append(outs, output{"serve stdout", stdout.Bytes()}, output{"serve stderr", stderr.Bytes()})
}
