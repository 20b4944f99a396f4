package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Column types of result tables. typeNone is a column that has only ever held nulls:
// it is stored as VARCHAR and takes the type of the first non-null values it meets.
const (
	typeNone    = ""
	typeBigint  = "BIGINT"
	typeDouble  = "DOUBLE"
	typeDate    = "DATE"
	typeVarchar = "VARCHAR"
)

// The columns every result table starts with.
var metaColumns = []string{"report_run_id", "date_from", "date_to", "loaded_at"}

// dateRE matches the Query API's date values: "2021-06-01" and the legacy
// "2021-06-01 00:00:00.0" (facts file §10).
var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}( 00:00:00(\.0+)?)?$`)

// valueType is the type one answer value asks for.
func valueType(v json.RawMessage) string {
	t := bytes.TrimSpace(v)
	if len(t) == 0 || string(t) == "null" {
		return typeNone
	}
	switch t[0] {
	case '"':
		var s string
		if json.Unmarshal(t, &s) == nil && isDate(s) {
			return typeDate
		}
		return typeVarchar
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if _, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return typeBigint
		}
		if _, err := strconv.ParseFloat(string(t), 64); err == nil {
			return typeDouble
		}
	}
	return typeVarchar
}

func isDate(s string) bool {
	if !dateRE.MatchString(s) {
		return false
	}
	_, err := time.Parse(time.DateOnly, s[:10])
	return err == nil
}

// unify is the narrowest type holding values of both types.
func unify(a, b string) string {
	switch {
	case a == b || b == typeNone:
		return a
	case a == typeNone:
		return b
	case (a == typeBigint && b == typeDouble) || (a == typeDouble && b == typeBigint):
		return typeDouble
	}
	return typeVarchar
}

// inferTypes returns each column's type over all rows.
func inferTypes(ncols int, rows [][]json.RawMessage) []string {
	types := make([]string, ncols)
	for _, row := range rows {
		for i := 0; i < ncols && i < len(row); i++ {
			if types[i] != typeVarchar {
				types[i] = unify(types[i], valueType(row[i]))
			}
		}
	}
	return types
}

// column is one stored column of a result table.
type column struct {
	Header, Name, Type string
	Position           int
}

// schemaChange is what reconcile decided for one run.
type schemaChange struct {
	cols    []column // the table's columns after the change, in position order
	headers []int    // for each answer header, its index in cols
	added   []int    // indexes in cols to ADD
	retyped []int    // indexes in cols whose type changes (ALTER … TYPE)
	widened []string // "column BIGINT→DOUBLE", for the result
}

// reconcile merges the answer's headers and inferred types into the stored schema.
// A new header becomes a new column; a stored column absent from the answer stays (its
// new rows get NULL); a typeNone column adopts the first real type; BIGINT widens to
// DOUBLE; DOUBLE and VARCHAR columns accept narrower values; anything else is a
// *TypeChangeError. Duplicate headers in one answer are an error.
func reconcile(table string, stored []column, headers, types []string) (schemaChange, error) {
	ch := schemaChange{cols: append([]column(nil), stored...)}
	byHeader := map[string]int{}
	used := map[string]bool{}
	for _, m := range metaColumns {
		used[m] = true
	}
	for i, c := range ch.cols {
		byHeader[c.Header] = i
		used[c.Name] = true
	}
	seen := map[string]bool{}
	for h, header := range headers {
		if seen[header] {
			return ch, fmt.Errorf("the answer has the header %q twice", header)
		}
		seen[header] = true
		got := types[h]
		i, ok := byHeader[header]
		if !ok {
			name := columnName(header, used)
			used[name] = true
			ch.cols = append(ch.cols, column{Header: header, Name: name, Type: got, Position: len(ch.cols)})
			i = len(ch.cols) - 1
			byHeader[header] = i
			ch.added = append(ch.added, i)
			ch.headers = append(ch.headers, i)
			continue
		}
		ch.headers = append(ch.headers, i)
		c := &ch.cols[i]
		switch {
		case got == typeNone || got == c.Type:
		case c.Type == typeNone:
			c.Type = got
			ch.retyped = append(ch.retyped, i)
		case c.Type == typeBigint && got == typeDouble:
			c.Type = typeDouble
			ch.retyped = append(ch.retyped, i)
			ch.widened = append(ch.widened, c.Name+" BIGINT→DOUBLE")
		case c.Type == typeDouble && got == typeBigint, c.Type == typeVarchar:
		default:
			return ch, &TypeChangeError{Table: table, Column: c.Name, Header: header, Stored: c.Type, Got: got}
		}
	}
	return ch, nil
}

// columnName turns a header into a lower-case snake_case identifier not in used:
// "Data Stream Total Rows" → data_stream_total_rows; a clash gets _2, _3, ….
func columnName(header string, used map[string]bool) string {
	var b strings.Builder
	lastUnderscore := true
	for _, r := range strings.ToLower(header) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			lastUnderscore = false
		} else if !lastUnderscore {
			b.WriteByte('_')
			lastUnderscore = true
		}
	}
	name := strings.TrimSuffix(b.String(), "_")
	if name == "" {
		name = "column"
	}
	if name[0] >= '0' && name[0] <= '9' {
		name = "c_" + name
	}
	if len(name) > 60 {
		name = name[:60]
	}
	base := name
	for n := 2; used[name]; n++ {
		name = fmt.Sprintf("%s_%d", base, n)
	}
	return name
}

// sqlType is the physical type of a column.
func sqlType(t string) string {
	if t == typeNone {
		return typeVarchar
	}
	return t
}

// convert turns one answer value into the Go value bound for a column of type t. The
// caller has reconciled types, so a failure here means an answer contradicting itself.
func convert(v json.RawMessage, t string) (any, error) {
	raw := bytes.TrimSpace(v)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	isString := raw[0] == '"'
	if isString {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
	}
	switch t {
	case typeBigint:
		return strconv.ParseInt(string(raw), 10, 64)
	case typeDouble:
		return strconv.ParseFloat(string(raw), 64)
	case typeDate:
		if !isString || !isDate(s) {
			return nil, fmt.Errorf("%s is not a date", raw)
		}
		return s[:10], nil
	}
	if isString {
		return s, nil
	}
	return string(raw), nil
}
