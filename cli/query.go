package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/load"
)

func init() { register(newQueryCommand) }

type queryOptions struct {
	format string
}

func (o *queryOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.format, "format", "table", "output format: table, csv or json")
}

func newQueryCommand(g *globalOptions) *cobra.Command {
	var opts queryOptions
	cmd := &cobra.Command{
		Use:   `query "SQL"`,
		Short: "Run one read-only SELECT against the store",
		Long: `Run one read-only SQL statement (SELECT or WITH … SELECT) and print the result.

It reads the serving copy (<data-dir>/serving.duckdb), which BI tools and any number of
queries may hold open at once, also while a crawl is writing. Before the first export
there is no serving copy; then the live store is read, but only while no crawl holds it.
Anything but a single SELECT is refused: no INSERT, UPDATE, DELETE, ATTACH, COPY, PRAGMA,
CREATE, DROP, and no second statement after a semicolon.

Examples:
  drextract query "select status, count(*) from jobs group by 1"
  drextract query --format csv "select * from streams where not is_deleted" > streams.csv

Exit codes: 0 ok, 1 failure (SQL error, no store), 2 usage (bad flag, refused statement).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQuery(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runQuery(ctx context.Context, cmd *cobra.Command, opts queryOptions, g *globalOptions, args []string) error {
	out, ok := queryWriters[opts.format]
	if !ok {
		return usage(fmt.Errorf("unknown --format %q: use table, csv or json", opts.format))
	}
	query := args[0]
	if err := load.CheckReadOnly(query); err != nil {
		return usage(err)
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	st, closeStore, err := openQueryStore(ctx, w)
	if err != nil {
		return err
	}
	defer closeStore()
	p := out(g.stdout)
	err = load.QueryEach(ctx, st.DB(), query, nil, p.header, p.row)
	if errors.Is(err, load.ErrNotReadOnly) {
		return usage(err)
	}
	if err != nil {
		return err
	}
	return p.end()
}

// openQueryStore opens the serving copy read-only, or, when none was published yet, the
// live store read-only while holding the writer lock, so that no crawl starts (and fails
// on DuckDB's file lock) while the query runs.
func openQueryStore(ctx context.Context, w *wiring) (*load.Store, func() error, error) {
	serving, live := w.cfg.Store.ServingPath(), w.cfg.Store.DuckDBPath()
	if _, err := os.Stat(serving); err == nil {
		st, err := load.OpenReadOnly(ctx, serving)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the serving copy: %w", err)
		}
		return st, st.Close, nil
	}
	if _, err := os.Stat(live); err != nil {
		return nil, nil, fmt.Errorf("no store in %s (neither %s nor %s exists); run drextract extract first",
			w.cfg.Store.DataDir, serving, live)
	}
	unlock, err := load.LockDir(w.cfg.Store.DataDir)
	var locked *load.LockedError
	if errors.As(err, &locked) {
		return nil, nil, fmt.Errorf("there is no serving copy yet, and the live store is being written: %w; "+
			"query again after it finished, or run drextract export then", err)
	}
	if err != nil {
		return nil, nil, err
	}
	w.log.Info("no serving copy yet; reading the live store", "path", live)
	st, err := load.OpenReadOnly(ctx, live)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("opening the store read-only: %w", err), unlock())
	}
	return st, func() error { return errors.Join(st.Close(), unlock()) }, nil
}

// queryPrinter writes one result in one format: header once, then rows as they come,
// then end.
type queryPrinter struct {
	header func([]load.Column) error
	row    func([]any) error
	end    func() error
}

var queryWriters = map[string]func(io.Writer) queryPrinter{
	"table": queryTableWriter,
	"csv":   queryCSVWriter,
	"json":  queryJSONWriter,
}

// queryTableWriter holds the rows to size the columns; the other formats stream.
func queryTableWriter(w io.Writer) queryPrinter {
	var cols []load.Column
	var cells [][]string
	return queryPrinter{
		header: func(c []load.Column) error { cols = c; return nil },
		row: func(vals []any) error {
			line := make([]string, len(vals))
			for i, v := range vals {
				line[i] = queryText(v, cols[i].Type, "NULL")
			}
			cells = append(cells, line)
			return nil
		},
		end: func() error {
			widths := make([]int, len(cols))
			for i, c := range cols {
				widths[i] = utf8.RuneCountInString(c.Name)
			}
			for _, line := range cells {
				for i, s := range line {
					widths[i] = max(widths[i], utf8.RuneCountInString(s))
				}
			}
			var b strings.Builder
			put := func(line []string, numeric func(int) bool) {
				for i, s := range line {
					pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(s))
					if i > 0 {
						b.WriteString("  ")
					}
					if numeric(i) {
						b.WriteString(pad + s)
					} else if i < len(line)-1 {
						b.WriteString(s + pad)
					} else {
						b.WriteString(s)
					}
				}
				b.WriteString("\n")
			}
			names := make([]string, len(cols))
			rules := make([]string, len(cols))
			for i, c := range cols {
				names[i], rules[i] = c.Name, strings.Repeat("-", widths[i])
			}
			never := func(int) bool { return false }
			put(names, never)
			put(rules, never)
			for _, line := range cells {
				put(line, func(i int) bool { return queryNumeric(cols[i].Type) })
			}
			noun := "rows"
			if len(cells) == 1 {
				noun = "row"
			}
			fmt.Fprintf(&b, "(%d %s)\n", len(cells), noun)
			_, err := io.WriteString(w, b.String())
			return err
		},
	}
}

func queryCSVWriter(w io.Writer) queryPrinter {
	cw := csv.NewWriter(w)
	var cols []load.Column
	return queryPrinter{
		header: func(c []load.Column) error {
			cols = c
			names := make([]string, len(c))
			for i, col := range c {
				names[i] = col.Name
			}
			return cw.Write(names)
		},
		row: func(vals []any) error {
			line := make([]string, len(vals))
			for i, v := range vals {
				line[i] = queryText(v, cols[i].Type, "")
			}
			return cw.Write(line)
		},
		end: func() error {
			cw.Flush()
			return cw.Error()
		},
	}
}

// queryJSONWriter writes a JSON array of objects, keys in column order.
func queryJSONWriter(w io.Writer) queryPrinter {
	var cols []load.Column
	var keys [][]byte
	n := 0
	return queryPrinter{
		header: func(c []load.Column) error {
			cols = c
			for _, col := range c {
				k, _ := json.Marshal(col.Name)
				keys = append(keys, k)
			}
			_, err := io.WriteString(w, "[")
			return err
		},
		row: func(vals []any) error {
			var b strings.Builder
			if n > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n  {")
			for i, v := range vals {
				if i > 0 {
					b.WriteString(", ")
				}
				b.Write(keys[i])
				b.WriteString(": ")
				b.Write(queryJSONValue(v, cols[i].Type))
			}
			b.WriteString("}")
			n++
			_, err := io.WriteString(w, b.String())
			return err
		},
		end: func() error {
			end := "]\n"
			if n > 0 {
				end = "\n]\n"
			}
			_, err := io.WriteString(w, end)
			return err
		},
	}
}

func queryNumeric(typ string) bool {
	switch {
	case strings.Contains(typ, "INT"), strings.HasPrefix(typ, "DECIMAL"), typ == "DOUBLE", typ == "FLOAT", typ == "REAL":
		return true
	}
	return false
}

// queryText renders a value for the table and CSV formats. Dates print as dates,
// timestamps in UTC as RFC 3339; JSON, lists and structs as JSON.
func queryText(v any, typ, null string) string {
	switch x := v.(type) {
	case nil:
		return null
	case string:
		return x
	case time.Time:
		return queryTime(x, typ)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case []byte:
		return fmt.Sprintf("\\x%x", x)
	case *big.Int:
		return x.String()
	case fmt.Stringer:
		return x.String()
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

func queryTime(t time.Time, typ string) string {
	switch typ {
	case "DATE":
		return t.Format(time.DateOnly)
	case "TIME":
		return t.Format("15:04:05.999999")
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func queryJSONValue(v any, typ string) []byte {
	switch x := v.(type) {
	case time.Time:
		v = queryTime(x, typ)
	case *big.Int:
		return []byte(x.String())
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) { // no JSON form
			v = strconv.FormatFloat(x, 'g', -1, 64)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return b
}
