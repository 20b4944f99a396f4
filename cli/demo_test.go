package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
)

// TestDemo runs `drextract demo` in-process, checks its summary against the store it
// wrote, that it wrote nothing outside its folder, and that it can run again on its own
// earlier folder.
func TestDemo(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "demo")
	cwd, _ := os.Getwd()
	_, errBefore := os.Stat(filepath.Join(cwd, demoDefaultDir))

	out := runDemoOK(t, dir)
	for _, want := range []string{
		"written under " + dir,
		"1. Full crawl: ", "2. Incremental crawl: ",
		"3. Selection failed-jobs-24h (dry run): ", "nothing sent", "for real (--yes): ",
		"4. Export: ", "Jobs by status:", "Top failing streams:", "SUCCESS", "FAILURE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q\n%s", want, out)
		}
	}

	// The numbers printed are the store's.
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(dir, "data", load.ServingFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	statusCount := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^  ([A-Z_]+)\s+(\d+)\s*$`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		statusCount[m[1]] = n
	}
	for _, status := range []string{"SUCCESS", "FAILURE"} {
		var want int
		if err := st.DB().QueryRow(`SELECT count(*) FROM jobs WHERE status = ? AND NOT is_deleted`, status).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if want == 0 || statusCount[status] != want {
			t.Errorf("summary says %d %s jobs, serving.duckdb has %d", statusCount[status], status, want)
		}
	}
	planned := atoiAfter(t, out, `\(dry run\): (\d+) failed jobs`)
	sent := atoiAfter(t, out, `for real \(--yes\): (\d+) reruns sent`)
	if planned == 0 || sent != planned {
		t.Errorf("dry run planned %d reruns, the real run sent %d; want the same, non-zero", planned, sent)
	}
	var items int
	if err := st.DB().QueryRow(`SELECT count(*) FROM action_items WHERE status = 'sent'`).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if items != sent {
		t.Errorf("action_items has %d sent items, the summary says %d", items, sent)
	}
	full := atoiAfter(t, out, `Full crawl: (\d+) API calls`)
	incr := atoiAfter(t, out, `Incremental crawl: (\d+) API calls`)
	if incr == 0 || incr >= full {
		t.Errorf("incremental crawl made %d calls, the full one %d", incr, full)
	}

	// Nothing outside the folder.
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "demo" {
		t.Errorf("the demo wrote beside its folder: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(cwd, demoDefaultDir)); err == nil && errBefore != nil {
		t.Errorf("the demo created ./%s although --dir was given", demoDefaultDir)
	}

	// Again, on its own earlier folder: cleared and rewritten.
	again := runDemoOK(t, dir)
	if !strings.Contains(again, "Top failing streams:") {
		t.Errorf("second demo's summary is incomplete:\n%s", again)
	}
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
		t.Errorf("the demo folder lost its marker: %v", err)
	}
}

func runDemoOK(t *testing.T, dir string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	begin := time.Now()
	code := DoContext(context.Background(), []string{"demo", "--dir", dir}, strings.NewReader(""), &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	t.Logf("demo took %s", time.Since(begin).Round(time.Millisecond))
	return stdout.String()
}

// BenchmarkDemo times the demo as a newcomer runs it (the README says about 10 s after
// the build); a duration belongs here, not in TestDemo, where a busy machine would fail it.
func BenchmarkDemo(b *testing.B) {
	for i := range b.N {
		var stdout, stderr bytes.Buffer
		dir := filepath.Join(b.TempDir(), fmt.Sprint("demo", i))
		if code := DoContext(context.Background(), []string{"demo", "--dir", dir}, strings.NewReader(""), &stdout, &stderr); code != ExitOK {
			b.Fatalf("demo exit %d\n%s", code, stderr.String())
		}
	}
}

func atoiAfter(t *testing.T, text, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("no %q in\n%s", pattern, text)
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestDemoRefusesForeignFolder: a non-empty folder that is not an earlier demo's is left
// alone.
func TestDemoRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	precious := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(precious, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := DoContext(context.Background(), []string{"demo", "--dir", dir}, strings.NewReader(""), &stdout, &stderr)
	if code != ExitUsage || !strings.Contains(stderr.String(), "refusing to write into") {
		t.Errorf("exit %d, stderr %q; want 2 and a refusal", code, stderr.String())
	}
	ents, _ := os.ReadDir(dir)
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me" || len(ents) != 1 {
		t.Errorf("the folder was touched: %v %q %v", err, b, ents)
	}
}
