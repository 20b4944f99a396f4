package datorama

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/sim"
)

// The memory bound under a hostile stats page (issue 12, point 9): a page just under
// the request's body bound is decoded, and a 240 MB page (the one that once pushed a
// crawl to 1.4 GB) is refused, each in a child process whose peak resident set
// (VmHWM) is the measure. The target is 400 MB; the benchmark fails above it. It is a
// benchmark, not a test: memory, like speed, depends on the machine.
//
//	go test ./datorama -run '^$' -bench HugePage -benchtime 1x

const (
	hugePageChildEnv = "DREXTRACT_HUGEPAGE_CHILD" // base URL|token|stream|pageSize
	hugePageRSSLimit = 400 << 20
)

func BenchmarkHugePageRSS(b *testing.B) {
	// A crawl asks 10,000 jobs a page until it learns the API's cap (the bound is then
	// the platform ceiling, 64 MiB); 800 is a page under a learned cap (50 MiB).
	for _, tc := range []struct {
		name     string
		pageSize int
		bytes    int // 0: just under the page's bound
		refuse   bool
	}{
		{"size 800 under the bound", 800, 0, false},
		{"size 10000 under the bound", 10000, 0, false},
		{"size 10000 240MB page", 10000, 240 << 20, true},
	} {
		bound := pageBound(tc.pageSize, jobRecordCeiling)
		if tc.bytes == 0 {
			tc.bytes = int(bound) - 64<<10
		}
		pageSize := tc.pageSize
		b.Run(tc.name, func(b *testing.B) {
			s := sim.New(sim.Options{Seed: 5, Workspaces: 1, Streams: 3, JobsPerStream: 30, Clock: clock.NewManual(simStart),
				PlatformLimit: 1 << 30, DailyQuota: 1 << 30,
				Faults: sim.Faults{Rates: map[string]float64{sim.FaultHugePage: 1}, HugePageBytes: tc.bytes, Path: "/v1/data-streams/api/*/stats"}})
			srv := httptest.NewServer(http.StripPrefix("/base", s))
			defer srv.Close()
			var st struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(s.Truth().Streams[0], &st); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				out := runHugePageChild(b, fmt.Sprintf("%s/base|%s|%d|%d", srv.URL, s.Tokens()[0], st.ID, pageSize))
				hwm, _ := strconv.ParseInt(out["vmhwm_kb"], 10, 64)
				b.ReportMetric(float64(hwm)/1024, "peakRSS-MB")
				b.ReportMetric(float64(tc.bytes)/(1<<20), "page-MB")
				if refused := out["refused"] == "true"; refused != tc.refuse {
					b.Fatalf("page of %d bytes against a bound of %d: refused %v (%s)", tc.bytes, bound, refused, out["err"])
				}
				if hwm<<10 > hugePageRSSLimit {
					b.Errorf("peak RSS %d MB, above the %d MB target", hwm>>10, hugePageRSSLimit>>20)
				}
			}
			if s.Calls().Faults[sim.FaultHugePage] == 0 {
				b.Fatal("the simulator served no huge page")
			}
		})
	}
}

// runHugePageChild runs TestHugePageChild in a child process and returns its report.
func runHugePageChild(b *testing.B, arg string) map[string]string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHugePageChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), hugePageChildEnv+"="+arg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("child: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "HUGEPAGE "); ok {
			out := map[string]string{}
			for _, kv := range strings.Split(rest, "\t") {
				k, v, _ := strings.Cut(kv, "=")
				out[k] = v
			}
			return out
		}
	}
	b.Fatalf("child printed no report:\n%s%s", stdout.String(), stderr.String())
	return nil
}

// TestHugePageChild is BenchmarkHugePageRSS's child: it reads one stats page and prints
// its peak resident set. It does nothing in a normal test run.
func TestHugePageChild(t *testing.T) {
	arg := os.Getenv(hugePageChildEnv)
	if arg == "" {
		t.Skip("the child of BenchmarkHugePageRSS")
	}
	parts := strings.Split(arg, "|")
	stream, _ := strconv.ParseInt(parts[2], 10, 64)
	size, _ := strconv.Atoi(parts[3])
	c, err := New(parts[0], parts[1], WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := c.Jobs.Page(context.Background(), stream, size, 1)
	logBytes := 0
	for _, j := range jobs {
		logBytes += len(j.ProcessLog) + len(j.Raw)
	}
	var tl *BodyTooLargeError
	errText := ""
	if err != nil {
		errText = strings.ReplaceAll(err.Error(), "\t", " ")
	}
	fmt.Printf("HUGEPAGE vmhwm_kb=%d\tjobs=%d\tdecoded_bytes=%d\trefused=%v\terr=%s\n",
		vmHWM(t), len(jobs), logBytes, errors.As(err, &tl), errText)
	if err != nil && !errors.As(err, &tl) {
		t.Fatal(err)
	}
}

// vmHWM is the process's peak resident set in kB, from /proc/self/status.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
