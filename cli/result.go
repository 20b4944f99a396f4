package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/mattn/go-runewidth"

	"github.com/drextract/drextract/load"
)

// resultFormats are the --format values of every command that prints rows (query,
// select, actions log); the demo prints tables.
var resultFormats = []string{"table", "csv", "json"}

// resultWriter is drextract's one printer of query results: rows of a query, a selection,
// the action log, the demo. header is called once, row for each row, end once with
// whether rows were left out. The renderings are the same in every format and command:
//
//   - NULL: "NULL" in a table, an empty field in CSV, null in JSON;
//   - timestamps in UTC, RFC 3339 (fractions of a second only when there are any);
//     dates as YYYY-MM-DD, times of day as hh:mm:ss[.ffffff];
//   - JSON, lists, structs and maps as JSON (in JSON output, as JSON values);
//   - NaN and infinities as NaN, Infinity, -Infinity (strings in JSON, which has no
//     such numbers); HUGEINT as an exact number (DECIMAL arrives as a double from
//     the driver); BLOBs as \x hex, UUIDs in their usual form.
//
// A table is aligned by display width (wide East Asian characters count two) with
// numbers to the right, and shows a line break or tab in a value as \n or \t.
type resultWriter interface {
	header(cols []load.Column) error
	row(vals []any) error
	end(more bool) error
}

// newResultWriter returns the printer of format, or an error naming the formats.
func newResultWriter(w io.Writer, format string) (resultWriter, error) {
	switch format {
	case "table":
		return &tableWriter{w: w}, nil
	case "csv":
		return &csvWriter{w: csv.NewWriter(w)}, nil
	case "json":
		return &jsonWriter{w: w}, nil
	}
	return nil, fmt.Errorf("unknown --format %q: use %s", format, strings.Join(resultFormats, ", "))
}

// writeResult prints a whole result.
func writeResult(w io.Writer, format string, res *load.Result) error {
	p, err := newResultWriter(w, format)
	if err != nil {
		return err
	}
	if err := p.header(res.Columns); err != nil {
		return err
	}
	for _, r := range res.Rows {
		if err := p.row(r); err != nil {
			return err
		}
	}
	return p.end(res.More)
}

// tableWriter holds the rows to size the columns.
type tableWriter struct {
	w     io.Writer
	cols  []load.Column
	cells [][]string
}

func (t *tableWriter) header(c []load.Column) error { t.cols = c; return nil }

func (t *tableWriter) row(vals []any) error {
	line := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			line[i] = "NULL"
			continue
		}
		line[i] = tableEscaper.Replace(cellText(v, t.cols[i].Type))
	}
	t.cells = append(t.cells, line)
	return nil
}

var tableEscaper = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`)

func (t *tableWriter) end(more bool) error {
	widths := make([]int, len(t.cols))
	names := make([]string, len(t.cols))
	rules := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = tableEscaper.Replace(c.Name)
		widths[i] = runewidth.StringWidth(names[i])
	}
	for _, line := range t.cells {
		for i, s := range line {
			widths[i] = max(widths[i], runewidth.StringWidth(s))
		}
	}
	for i := range rules {
		rules[i] = strings.Repeat("-", widths[i])
	}
	var b strings.Builder
	put := func(line []string, right func(int) bool) {
		for i, s := range line {
			pad := strings.Repeat(" ", widths[i]-runewidth.StringWidth(s))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case right(i):
				b.WriteString(pad + s)
			case i < len(line)-1:
				b.WriteString(s + pad)
			default:
				b.WriteString(s)
			}
		}
		b.WriteString("\n")
	}
	left := func(int) bool { return false }
	put(names, left)
	put(rules, left)
	for _, line := range t.cells {
		put(line, func(i int) bool { return numericType(t.cols[i].Type) })
	}
	noun := "rows"
	if len(t.cells) == 1 {
		noun = "row"
	}
	tail := ""
	if more {
		tail = "; more not shown"
	}
	fmt.Fprintf(&b, "(%d %s%s)\n", len(t.cells), noun, tail)
	_, err := io.WriteString(t.w, b.String())
	return err
}

type csvWriter struct {
	w    *csv.Writer
	cols []load.Column
}

func (c *csvWriter) header(cols []load.Column) error {
	c.cols = cols
	names := make([]string, len(cols))
	for i, col := range cols {
		names[i] = col.Name
	}
	return c.w.Write(names)
}

func (c *csvWriter) row(vals []any) error {
	line := make([]string, len(vals))
	for i, v := range vals {
		if v != nil {
			line[i] = cellText(v, c.cols[i].Type)
		}
	}
	return c.w.Write(line)
}

func (c *csvWriter) end(bool) error {
	c.w.Flush()
	return c.w.Error()
}

// jsonWriter writes an array of objects, one per row, keys in column order; it streams.
type jsonWriter struct {
	w    io.Writer
	cols []load.Column
	keys [][]byte
	n    int
}

func (j *jsonWriter) header(cols []load.Column) error {
	j.cols = cols
	for _, col := range cols {
		k, err := json.Marshal(col.Name)
		if err != nil {
			return err
		}
		j.keys = append(j.keys, k)
	}
	_, err := io.WriteString(j.w, "[")
	return err
}

func (j *jsonWriter) row(vals []any) error {
	var b strings.Builder
	if j.n > 0 {
		b.WriteString(",")
	}
	b.WriteString("\n  {")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(j.keys[i])
		b.WriteString(": ")
		b.Write(jsonValue(v, j.cols[i].Type))
	}
	b.WriteString("}")
	j.n++
	_, err := io.WriteString(j.w, b.String())
	return err
}

func (j *jsonWriter) end(bool) error {
	tail := "]\n"
	if j.n > 0 {
		tail = "\n]\n"
	}
	_, err := io.WriteString(j.w, tail)
	return err
}

// numericType reports whether a DuckDB type holds numbers (right-aligned in a table).
func numericType(typ string) bool {
	switch {
	case strings.Contains(typ, "INT"), strings.HasPrefix(typ, "DECIMAL"), typ == "DOUBLE", typ == "FLOAT", typ == "REAL":
		return true
	}
	return false
}

// cellText renders a non-NULL value as text, for the table and CSV formats.
func cellText(v any, typ string) string {
	if isComposite(v) {
		if b, err := json.Marshal(jsonable(v)); err == nil {
			return string(b)
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return timeText(x, typ)
	case float64:
		return floatText(x, 64)
	case float32:
		return floatText(float64(x), 32)
	case []byte:
		return bytesText(x, typ)
	case *big.Int:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// isComposite reports whether v is a value DuckDB builds of others (JSON, a list, a
// struct, a map, an interval), which renders as JSON.
func isComposite(v any) bool {
	switch v.(type) {
	case map[string]any, []any, duckdb.Map, duckdb.Interval:
		return true
	}
	return false
}

// bytesText renders a UUID in its usual form and any other bytes (BLOB) as \x hex.
func bytesText(b []byte, typ string) string {
	if typ == "UUID" && len(b) == 16 {
		return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	}
	return fmt.Sprintf(`\x%x`, b)
}

func timeText(t time.Time, typ string) string {
	switch typ {
	case "DATE":
		return t.Format(time.DateOnly)
	case "TIME", "TIMETZ", "TIME_NS":
		return t.Format("15:04:05.999999")
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func floatText(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// jsonable turns what the driver gives into values encoding/json renders the same way
// cellText does: times and special floats as text, exact numbers as numbers, DuckDB maps
// (whose keys may be of any type) as objects with text keys.
func jsonable(v any) any {
	switch x := v.(type) {
	case time.Time:
		return timeText(x, "")
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return floatText(x, 64)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return floatText(float64(x), 32)
		}
	case *big.Int:
		return json.Number(x.String())
	case duckdb.Decimal:
		return json.Number(x.String())
	case []byte:
		return bytesText(x, "")
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			key := fmt.Sprint(k)
			if k == nil {
				key = "NULL"
			}
			out[key] = jsonable(e)
		}
		return out
	}
	return v
}

// jsonValue renders a value (NULL included) as JSON. The driver has already parsed the
// values of JSON columns.
func jsonValue(v any, typ string) []byte {
	switch x := v.(type) {
	case time.Time:
		v = timeText(x, typ)
	case []byte:
		v = bytesText(x, typ)
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return b
}
