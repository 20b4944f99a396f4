package report

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
)

// DefinitionError is the failure of one report definition. Every error Run returns for
// a definition is one, so the message always starts with the definition's name.
type DefinitionError struct {
	Report string
	// Field is the definition's dimension, measurement, sort or filter field the Query
	// API named in a 422, when one could be matched; "" otherwise.
	Field string
	Err   error
}

func (e *DefinitionError) Error() string {
	var apiErr *datorama.APIError
	var qErr *datorama.QueryError
	switch {
	case errors.As(e.Err, &apiErr) && datorama.IsRejected(e.Err) && e.Field != "":
		return fmt.Sprintf("report %q: the Query API rejected field %q: %s", e.Report, e.Field, apiErr.Message)
	case errors.As(e.Err, &apiErr) && datorama.IsRejected(e.Err):
		return fmt.Sprintf("report %q: the Query API rejected the query: %s", e.Report, apiErr.Message)
	case errors.As(e.Err, &qErr):
		return fmt.Sprintf("report %q: the Query API answered with errors: %s", e.Report, qErr.Message)
	}
	return fmt.Sprintf("report %q: %v", e.Report, e.Err)
}

func (e *DefinitionError) Unwrap() error { return e.Err }

// TypeChangeError says an answer's column no longer fits the type its table stores and
// cannot be widened to it (e.g. a BIGINT column that now holds text). Nothing is written.
type TypeChangeError struct {
	Table, Column, Header string
	Stored, Got           string
}

func (e *TypeChangeError) Error() string {
	return fmt.Sprintf("column %s.%s (%q) is %s but the answer now holds %s values; "+
		"rename the table or drop the column by hand to accept the new type",
		e.Table, e.Column, e.Header, e.Stored, e.Got)
}

// definitionError wraps err for def, naming the field a 422 complains about.
func definitionError(def *config.Report, err error) error {
	if err == nil {
		return nil
	}
	de := &DefinitionError{Report: def.Name, Err: err}
	var apiErr *datorama.APIError
	if errors.As(err, &apiErr) && datorama.IsRejected(err) {
		de.Field = fieldNamed(def, apiErr.Message)
	}
	return de
}

// fieldNamed finds which of the definition's fields a parse-error message names: a
// quoted name first, then a bare one, longest first so "Data Stream Total Rows" wins over
// "Data Stream".
func fieldNamed(def *config.Report, msg string) string {
	var fields []string
	fields = append(fields, def.Dimensions...)
	fields = append(fields, def.Measurements...)
	if def.Sort != nil {
		fields = append(fields, def.Sort.By)
	}
	for _, f := range def.Filters {
		for _, k := range []string{"dimension", "fieldName"} {
			if s, ok := f[k].(string); ok {
				fields = append(fields, s)
			}
		}
	}
	slices.SortStableFunc(fields, func(a, b string) int { return len(b) - len(a) })
	lower := strings.ToLower(msg)
	for _, f := range fields {
		if f != "" && strings.Contains(lower, strings.ToLower(`"`+f+`"`)) {
			return f
		}
	}
	for _, f := range fields {
		if f != "" && strings.Contains(lower, strings.ToLower(f)) {
			return f
		}
	}
	return ""
}
