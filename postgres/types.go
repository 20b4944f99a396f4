package postgres

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// pgType is the PostgreSQL type of a column of DuckDB type duck, as format_type prints
// it. Types without a faithful PostgreSQL counterpart that the store reads as text
// (load.Rows) become text.
func pgType(duck string) string {
	if elem, ok := strings.CutSuffix(duck, "[]"); ok {
		switch elem {
		case "BOOLEAN", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "VARCHAR":
			return pgType(elem) + "[]"
		}
		return "text"
	}
	switch duck {
	case "BOOLEAN":
		return "boolean"
	case "TINYINT", "SMALLINT", "UTINYINT":
		return "smallint"
	case "INTEGER", "USMALLINT":
		return "integer"
	case "BIGINT", "UINTEGER":
		return "bigint"
	case "UBIGINT", "HUGEINT", "UHUGEINT":
		return "numeric"
	case "FLOAT":
		return "real"
	case "DOUBLE":
		return "double precision"
	case "VARCHAR":
		return "text"
	case "DATE":
		return "date"
	case "TIMESTAMP WITH TIME ZONE":
		return "timestamp with time zone"
	case "TIMESTAMP":
		return "timestamp without time zone"
	case "JSON":
		return "jsonb"
	}
	if m := decimalRE.FindStringSubmatch(duck); m != nil {
		return fmt.Sprintf("numeric(%s,%s)", m[1], m[2])
	}
	return "text"
}

var decimalRE = regexp.MustCompile(`^DECIMAL\((\d+),(\d+)\)$`)

// converter turns the store's value of a column into what pgx encodes as its
// PostgreSQL type; nil when the value passes as it is.
func converter(pg string) func(any) (any, error) {
	if !strings.HasPrefix(pg, "numeric") {
		return nil
	}
	return func(v any) (any, error) {
		s, ok := v.(string)
		if !ok {
			return v, nil
		}
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			return nil, fmt.Errorf("%q is not a number: %w", s, err)
		}
		return n, nil
	}
}
