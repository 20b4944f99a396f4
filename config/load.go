package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// MaxFileSize bounds what Load reads; a schedules file is a few kilobytes.
const MaxFileSize = 1 << 20

// extensionPrefix marks top-level keys that drextract ignores, so that anchors shared by
// several schedules have somewhere to live.
const extensionPrefix = "x-"

// maxNodes bounds the syntax-tree walk, so aliases that expand exponentially ("billion
// laughs") fail fast instead of eating memory.
const maxNodes = 100_000

// Load reads, strictly decodes and validates the schedules file at path, checking
// selections against the built-ins and the file's selections_dir but not reading tokens
// (Tokens does that when they are needed; `drextract config check` asks for it with
// LoadWithOptions). The error is an Errors listing every mistake, one per line, or an I/O
// error (errors.Is(err, fs.ErrNotExist) when there is no such file; callers then use
// Default).
//
// When only validation failed, Load returns the decoded Config too, so that a caller can
// print its Warnings; it must not be used for anything else.
func Load(path string) (*Config, error) { return LoadWithOptions(path, ValidateOptions{}) }

// LoadWithOptions is Load with explicit validation options.
func LoadWithOptions(path string, opts ValidateOptions) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Kind: ErrBadValue, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}}
	}
	return Parse(path, data, opts)
}

// Parse decodes and validates data as if read from the file name; relative paths in it
// are resolved against name's directory. It never panics, whatever data holds.
func Parse(name string, data []byte, opts ValidateOptions) (*Config, error) {
	c, errs := decode(name, data, opts.lookupEnv())
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	c.Path = name
	if err := c.Validate(opts); err != nil {
		return c, err
	}
	return c, nil
}

// decode turns data into a Config with defaults applied, or lists the syntax, unknown-key
// and type mistakes. It walks the syntax tree against the Go types first, because
// goccy/go-yaml stops at the first unknown key (picked from a map, so not even the first
// in the file) and silently converts "3000" or 3.5 into an int.
func decode(name string, data []byte, lookupEnv func(string) (string, bool)) (c *Config, errs Errors) {
	defer func() {
		if r := recover(); r != nil {
			// Third-party parsing of hostile input: report, don't crash the daemon.
			c, errs = nil, Errors{{File: name, Kind: ErrSyntax, Msg: fmt.Sprintf("cannot parse the file: %v", r)}}
		}
	}()
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte-order mark from a Windows editor
	// Duplicate keys are allowed here only so that the walker can report them with their
	// key path; nothing is decoded from a file that has any.
	file, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, Errors{yamlError(name, data, err)}
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc == nil || isEmpty(doc.Body) {
			continue
		}
		if body != nil {
			return nil, Errors{{File: name, Line: line(doc.Body), Kind: ErrSyntax, Msg: "more than one YAML document (---); keep the whole configuration in one"}}
		}
		body = doc.Body
	}
	w := &walker{file: name, lines: map[string]int{}, anchors: map[string]ast.Node{}}
	if body != nil {
		ast.Walk(anchorCollector(w.anchors), body)
		w.walk(body, reflect.TypeFor[Config](), "", 0)
	}
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	c = &Config{}
	if body != nil {
		if err := yaml.NodeToValue(body, c, yaml.DisallowUnknownField(), yaml.AllowFieldPrefixes(extensionPrefix)); err != nil {
			return nil, Errors{yamlError(name, data, err)}
		}
	}
	c.lines = w.lines
	c.applyDefaults(filepath.Dir(name), lookupEnv)
	return c, nil
}

// unquotedStar spots the classic cron mistake: "cron: * * * * *" reads as an alias.
var unquotedStar = regexp.MustCompile(`:\s+\*`)

// yamlError converts a goccy/go-yaml error (syntax, duplicate key, or a decoding mistake
// the walker let through) into one line.
func yamlError(name string, data []byte, err error) *Error {
	e := &Error{File: name, Kind: ErrSyntax, Msg: err.Error()}
	var ye yaml.Error
	if errors.As(err, &ye) {
		e.Msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line = tk.Position.Line
		}
	}
	if e.Line > 0 {
		lines := strings.Split(string(data), "\n")
		if e.Line <= len(lines) && unquotedStar.MatchString(lines[e.Line-1]) {
			e.Msg += `; a value starting with "*" must be quoted, e.g. cron: "*/5 * * * *"`
		}
	}
	var te *yaml.TypeError
	var ne *yaml.UnexpectedNodeTypeError
	var ue *yaml.UnknownFieldError
	switch {
	case errors.As(err, &te), errors.As(err, &ne):
		e.Kind = ErrBadType
	case errors.As(err, &ue):
		e.Kind = ErrUnknownKey
	}
	return e
}

func isEmpty(n ast.Node) bool {
	switch n.(type) {
	case nil, *ast.CommentGroupNode, *ast.CommentNode:
		return true
	case *ast.NullNode:
		return true
	}
	return false
}

func line(n ast.Node) int {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// walker checks a syntax tree against a Go type: mappings against the yaml tags of a
// struct, lists against slices, scalars against the field's kind. It records the line of
// every key path it sees, for later validation messages.
type walker struct {
	file    string
	lines   map[string]int
	anchors map[string]ast.Node
	errs    Errors
	nodes   int  // values visited, aliases and merges expanded
	over    bool // the size limit was hit (and reported)
}

// count records one more visited value and reports whether the walk may go on. Past
// maxNodes values or 100 levels it reports one error and stops every walk, so the
// decoder never sees a file whose aliases or merges expand exponentially.
func (w *walker) count(n ast.Node, path string, depth int) bool {
	w.nodes++
	if w.over {
		return false
	}
	if w.nodes > maxNodes || depth > 100 {
		w.over = true
		w.errorf(ErrSyntax, n, path, "document too large or too deeply nested (anchors and aliases expand to more than %d values)", maxNodes)
		return false
	}
	return true
}

// size walks a value of any shape, expanding aliases and merges, only to count it.
func (w *walker) size(n ast.Node, path string, depth int) {
	if !w.count(n, path, depth) {
		return
	}
	switch v := w.deref(n).(type) {
	case *ast.MappingNode:
		own, merged := w.pairs(v, path, depth)
		for _, mv := range append(own, merged...) {
			w.size(mv.Value, path, depth+1)
		}
	case *ast.SequenceNode:
		for _, item := range v.Values {
			w.size(item, path, depth+1)
		}
	}
}

func (w *walker) errorf(kind error, n ast.Node, path, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Line: line(n), Key: path, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

// deref follows anchors, tags and aliases to the node that holds the value.
func (w *walker) deref(n ast.Node) ast.Node {
	for i := 0; i < 64; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil {
				return nil
			}
			target, ok := w.anchors[v.Value.GetToken().Value]
			if !ok {
				return nil
			}
			n = target
		default:
			return n
		}
	}
	return nil
}

func (w *walker) walk(n ast.Node, t reflect.Type, path string, depth int) {
	if !w.count(n, path, depth) {
		return
	}
	orig := n
	n = w.deref(n)
	if n == nil {
		w.errorf(ErrSyntax, orig, path, "alias refers to no anchor")
		return
	}
	if _, null := n.(*ast.NullNode); null {
		return // an empty value leaves the zero value (or the default)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			w.typeError(n, path, t)
			return
		}
		w.walkStruct(m, t, path, depth)
	case reflect.Map:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			w.typeError(n, path, t)
			return
		}
		w.walkMap(m, t, path, depth)
	case reflect.Slice:
		s, ok := n.(*ast.SequenceNode)
		if !ok {
			w.typeError(n, path, t)
			return
		}
		for i, item := range s.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = line(item)
			w.walk(item, t.Elem(), p, depth+1)
		}
	case reflect.Interface:
		// Passed through as written (report filters); only sized.
		w.size(n, path, depth)
	default:
		w.walkScalar(n, t, path)
	}
}

// pairs returns a mapping's entries, with the entries of merged mappings (<<: *base)
// after its own so that its own keys take the recorded lines.
func (w *walker) pairs(m *ast.MappingNode, path string, depth int) (own, merged []*ast.MappingValueNode) {
	for _, mv := range m.Values {
		// Merges of merges can expand exponentially; count them like walked values.
		if !w.count(mv, "", depth) {
			return own, merged
		}
		if mv.Key != nil && mv.Key.IsMergeKey() {
			// The decoder merges one mapping into a struct, not a list of them.
			mm, ok := w.deref(mv.Value).(*ast.MappingNode)
			if !ok {
				w.errorf(ErrBadType, mv.Key, join(path, "<<"), "want one mapping to merge, such as <<: *defaults")
				continue
			}
			o, m := w.pairs(mm, path, depth+1)
			merged = append(merged, o...)
			merged = append(merged, m...)
			continue
		}
		own = append(own, mv)
	}
	return own, merged
}

func (w *walker) walkStruct(m *ast.MappingNode, t reflect.Type, path string, depth int) {
	fields := yamlFields(t)
	own, merged := w.pairs(m, path, depth)
	w.duplicates(own, path)
	for i, mv := range append(own, merged...) {
		key := keyText(mv.Key)
		p := join(path, key)
		f, ok := fields.byName[key]
		if !ok {
			if path == "" && strings.HasPrefix(key, extensionPrefix) {
				// A home for anchors (x-defaults: &d …), as in Compose files. Not
				// decoded, but the decoder expands it, so it is sized.
				w.lines[p] = line(mv.Key)
				w.size(mv.Value, p, depth+1)
				continue
			}
			if i < len(own) {
				w.unknownKey(mv, p, key, fields.names)
			}
			continue
		}
		if _, seen := w.lines[p]; !seen || i < len(own) {
			w.lines[p] = line(mv.Key)
		}
		w.walk(mv.Value, f.Type, p, depth+1)
	}
}

func (w *walker) walkMap(m *ast.MappingNode, t reflect.Type, path string, depth int) {
	own, merged := w.pairs(m, path, depth)
	w.duplicates(own, path)
	for _, mv := range append(own, merged...) {
		p := join(path, keyText(mv.Key))
		if _, seen := w.lines[p]; !seen {
			w.lines[p] = line(mv.Key)
		}
		w.walk(mv.Value, t.Elem(), p, depth+1)
	}
}

// duplicates reports a key written twice in one mapping (YAML forbids it; which value
// would win is up to the decoder).
func (w *walker) duplicates(own []*ast.MappingValueNode, path string) {
	first := map[string]int{}
	for _, mv := range own {
		key := keyText(mv.Key)
		if l, dup := first[key]; dup {
			w.errs = append(w.errs, &Error{File: w.file, Line: line(mv.Key), Key: join(path, key), Kind: ErrDuplicateKey,
				Msg: fmt.Sprintf("key %s is written twice (first at line %d)", quoteKey(key), l)})
			continue
		}
		first[key] = line(mv.Key)
	}
}

func (w *walker) unknownKey(mv *ast.MappingValueNode, path, key string, known []string) {
	var hint string
	switch {
	case len(known) == 0:
		hint = "this section takes no keys"
	default:
		hint = "known keys: " + strings.Join(known, ", ")
	}
	if strings.Contains(strings.ToLower(key), "token") && path != "api.tokens" {
		// Someone is about to paste a secret into the file: say where it belongs.
		hint = "tokens are never written in this file; list where they are read from under api.tokens ({env: NAME} or {file: PATH})"
	}
	w.errs = append(w.errs, &Error{File: w.file, Line: line(mv.Key), Key: path, Kind: ErrUnknownKey,
		Msg: fmt.Sprintf("unknown key %s (%s)", quoteKey(key), hint)})
}

func (w *walker) walkScalar(n ast.Node, t reflect.Type, path string) {
	switch t.Kind() {
	case reflect.String:
		switch n.(type) {
		case *ast.StringNode, *ast.LiteralNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
			return
		}
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); ok {
			return
		}
	case reflect.Float32, reflect.Float64:
		switch n.(type) {
		case *ast.FloatNode, *ast.IntegerNode, *ast.InfinityNode, *ast.NanNode:
			return
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if in, ok := n.(*ast.IntegerNode); ok {
			if v, ok := in.Value.(uint64); ok && v > math.MaxInt64 {
				w.errorf(ErrBadValue, n, path, "integer out of range")
			}
			return
		}
	}
	w.typeError(n, path, t)
}

func (w *walker) typeError(n ast.Node, path string, want reflect.Type) {
	if path == "" {
		w.errorf(ErrBadType, n, path, "the file must be a mapping of keys (version, api, store, budget, selections_dir, sql_timeout, reports, schedules, notify, publish), not %s", nodeKind(n))
		return
	}
	if want == reflect.TypeFor[TokenSource]() {
		// Someone wrote the secret itself (a token, a webhook URL): never echo it.
		w.errorf(ErrBadTokenSource, n, path, "want {env: NAME} or {file: PATH}, got %s (value not shown); the secret itself never goes in this file", nodeKind(n))
		return
	}
	w.errorf(ErrBadType, n, path, "want %s, got %s", typeKind(want), nodeKind(n))
}

func typeKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return t.String()
}

func nodeKind(n ast.Node) string {
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "true/false"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a " + strings.ToLower(n.Type().String())
}

func keyText(k ast.MapKeyNode) string {
	switch v := k.(type) {
	case nil:
		return ""
	case *ast.StringNode:
		return v.Value
	case *ast.MappingKeyNode:
		if v.Value != nil {
			if tk := v.Value.GetToken(); tk != nil {
				return tk.Value
			}
		}
		return ""
	}
	if tk := k.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type structFields struct {
	byName map[string]reflect.StructField
	names  []string // in declaration order, for hints
}

// yamlFields reads a struct's yaml tags: the keys the strict decoder accepts.
func yamlFields(t reflect.Type) structFields {
	fs := structFields{byName: map[string]reflect.StructField{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.byName[name] = f
		fs.names = append(fs.names, name)
	}
	return fs
}
