package datorama

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// indexFile is the facts file's endpoint index, kept in the repository; factsFile is
// the facts file itself, outside the repository (../shared next to the tree), which is
// the source the copy must follow.
const (
	indexFile = "testdata/endpoint_index.md"
	factsFile = "../../shared/datorama-api.md"
)

var endpointLine = regexp.MustCompile(`^Datorama API: (GET|POST|PUT|PATCH|DELETE) (/v1/\S+)$`)

// endpointDocs maps "StreamsService.List" to the endpoint its doc comment ends with,
// e.g. "GET /v1/workspaces/{wsId}/data-streams". Methods without one map to "".
func endpointDocs(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil {
				continue
			}
			star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
			if !ok {
				continue
			}
			recv, ok := star.X.(*ast.Ident)
			if !ok || !strings.HasSuffix(recv.Name, "Service") {
				continue
			}
			name := recv.Name + "." + fn.Name.Name
			var endpoint string
			if fn.Doc != nil {
				lines := strings.Split(strings.TrimSpace(fn.Doc.Text()), "\n")
				if m := endpointLine.FindStringSubmatch(lines[len(lines)-1]); m != nil {
					endpoint = m[1] + " " + m[2]
				}
			}
			// Every exported method names its endpoint; an unexported one that does (a
			// test-only reader) is checked like them.
			if fn.Name.IsExported() || endpoint != "" {
				out[name] = endpoint
			}
		}
	}
	return out
}

// indexRow is one row of the facts file's endpoint index.
type indexRow struct {
	num       string
	endpoints []string // "METHOD /path", one per method × path
}

// indexSection is the "## 1. Endpoint index" section of a facts file's text, up to the
// next section.
func indexSection(t *testing.T, text, name string) string {
	t.Helper()
	start := strings.Index(text, "## 1. Endpoint index")
	if start < 0 {
		t.Fatalf("%s has no '## 1. Endpoint index' section", name)
	}
	section := text[start:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	return section
}

// endpointIndex reads the endpoint index table kept in testdata.
func endpointIndex(t *testing.T) []indexRow {
	t.Helper()
	b, err := os.ReadFile(indexFile)
	if err != nil {
		t.Fatal(err)
	}
	section := indexSection(t, string(b), indexFile)
	tick := regexp.MustCompile("`([^`]+)`")
	var rows []indexRow
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		num, methods, paths := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2]), cells[3]
		if num == "#" || strings.HasPrefix(num, "-") {
			continue
		}
		row := indexRow{num: num}
		for _, m := range tick.FindAllStringSubmatch(paths, -1) {
			p := m[1]
			if i := strings.IndexAny(p, "[?"); i >= 0 {
				p = p[:i]
			}
			if !strings.HasPrefix(p, "/v1/") {
				continue
			}
			for _, method := range strings.Split(methods, "/") {
				row.endpoints = append(row.endpoints, strings.TrimSpace(method)+" "+p)
			}
		}
		rows = append(rows, row)
	}
	if len(rows) < 29 {
		t.Fatalf("read %d rows from the endpoint index; the table format changed?", len(rows))
	}
	return rows
}

// TestEndpointDocsMatchTheFactsFile: every service method names its endpoint, every
// named endpoint is in the facts file's index, and every index row the client must
// cover (1–24 and the Query API rows 28–29; not the single-source variant 10b) is
// covered, each of its methods.
func TestEndpointDocsMatchTheFactsFile(t *testing.T) {
	rows := endpointIndex(t)
	docs := endpointDocs(t)
	known := map[string]string{} // endpoint → row
	for _, r := range rows {
		for _, e := range r.endpoints {
			known[e] = r.num
		}
	}
	covered := map[string]bool{}
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		e := docs[name]
		if e == "" {
			t.Errorf("%s: doc comment does not end with \"Datorama API: METHOD /v1/path\"", name)
			continue
		}
		if _, ok := known[e]; !ok {
			t.Errorf("%s: endpoint %q is not in the facts file's endpoint index", name, e)
		}
		covered[e] = true
	}
	required := map[string]bool{"28": true, "29": true}
	for i := 1; i <= 24; i++ {
		required[strconv.Itoa(i)] = true
	}
	for _, r := range rows {
		if !required[r.num] {
			continue
		}
		if len(r.endpoints) == 0 {
			t.Errorf("row %s: no /v1 path read", r.num)
		}
		for _, e := range r.endpoints {
			if !covered[e] {
				t.Errorf("row %s: no client method for %s", r.num, e)
			}
		}
	}
}

// TestEndpointIndexIsTheFactsFiles: the copy in testdata is the facts file's section,
// where the facts file exists (on a developer's machine; CI has only the copy).
func TestEndpointIndexIsTheFactsFiles(t *testing.T) {
	facts, err := os.ReadFile(factsFile)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("facts file %s is absent; the copy in %s is what TestEndpointDocsMatchTheFactsFile checks against", factsFile, indexFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(indexFile)
	if err != nil {
		t.Fatal(err)
	}
	if indexSection(t, string(facts), factsFile) != indexSection(t, string(copied), indexFile) {
		t.Errorf("%s differs from the endpoint index of %s: copy the section again", indexFile, factsFile)
	}
}
