package action

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxCSVRows bounds a CSV file; bulk actions beyond this are a mistake more often than not.
const maxCSVRows = 100_000

// LineError is an input error that names where it is: FILE:LINE: message.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseCSV reads the input rows of op from a CSV file. The first line is a header naming
// exactly the operation's columns, in any order. It is strict: any bad row (wrong column
// count, bad id, bad date, empty name, bad JSON patch, a duplicate) refuses the whole
// file, and the error names the file and line. Nothing is looked up here; that the
// streams exist is checked against the store before any call.
func ParseCSV(r io.Reader, file string, op Op) ([]Row, error) {
	want := op.Columns()
	if len(want) == 0 {
		return nil, fmt.Errorf("unknown action %q", op)
	}
	return parseCSV(r, file, op, want, Row{})
}

// ParseCreateCSV reads the rows of a creation in workspace ws from a CSV file whose
// header names one column, json: one entity per line, as the API takes it (a JSON
// object, quoted as CSV quotes a field). It is as strict as ParseCSV; a body naming
// another workspace, or a name given twice, refuses the file.
func ParseCreateCSV(r io.Reader, file string, op Op, ws int64) ([]Row, error) {
	if !op.Creates() {
		return nil, fmt.Errorf("action %q creates nothing", op)
	}
	if ws <= 0 {
		return nil, fmt.Errorf("%d is not a workspace id", ws)
	}
	return parseCSV(r, file, op, []string{ColJSON}, Row{WorkspaceID: ws})
}

// parseCSV reads rows with the columns want; base holds what every row shares.
func parseCSV(r io.Reader, file string, op Op, want []string, base Row) ([]Row, error) {
	cr := csv.NewReader(skipBOM(r))
	cr.FieldsPerRecord = 0 // the header fixes the count; a differing row is an error
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &LineError{file, 1, fmt.Sprintf("empty file; want a header line: %s", strings.Join(want, ","))}
	}
	if err != nil {
		return nil, csvError(file, err)
	}
	idx, err := headerIndex(header, want)
	if err != nil {
		return nil, &LineError{file, 1, err.Error()}
	}
	var rows []Row
	seen := newDupChecker(op)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rows) >= maxCSVRows {
			return nil, &LineError{file, line, fmt.Sprintf("more than %d rows; split the file", maxCSVRows)}
		}
		row := base
		row.Line = line
		for i, col := range want {
			if err := row.setField(col, rec[idx[i]]); err != nil {
				return nil, &LineError{file, line, err.Error()}
			}
		}
		if err := row.check(op); err != nil {
			return nil, &LineError{file, line, err.Error()}
		}
		if prev, msg := seen.add(row); prev > 0 {
			return nil, &LineError{file, line, fmt.Sprintf("%s (line %d)", msg, prev)}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, &LineError{file, 2, "no rows after the header"}
	}
	return rows, nil
}

// headerIndex maps each wanted column to its position in the header.
func headerIndex(header, want []string) ([]int, error) {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if _, dup := pos[name]; dup {
			return nil, fmt.Errorf("column %q appears twice in the header", name)
		}
		pos[name] = i
	}
	idx := make([]int, len(want))
	for i, w := range want {
		p, ok := pos[w]
		if !ok {
			return nil, fmt.Errorf("header lacks column %q (want: %s)", w, strings.Join(want, ","))
		}
		idx[i] = p
		delete(pos, w)
	}
	for name := range pos {
		return nil, fmt.Errorf("unexpected column %q in the header (want exactly: %s)", name, strings.Join(want, ","))
	}
	return idx, nil
}

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "wrong number of columns"
		}
		return &LineError{file, pe.Line, msg}
	}
	return fmt.Errorf("%s: %w", file, err)
}

func skipBOM(r io.Reader) io.Reader {
	buf := make([]byte, 3)
	n, err := io.ReadFull(r, buf)
	if n == 3 && bytes.Equal(buf, []byte{0xEF, 0xBB, 0xBF}) {
		return r
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return io.MultiReader(bytes.NewReader(buf[:n]), errReader{err})
	}
	return io.MultiReader(bytes.NewReader(buf[:n]), r)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// dupChecker refuses rows that would make the same change twice or contradict each
// other: the same stream twice for per-stream operations, the same job twice, or
// overlapping ranges of one stream for process.
type dupChecker struct {
	op      Op
	byKey   map[[2]int64]int
	byRange map[int64][]Row
	byName  map[nameKey]int
}

func newDupChecker(op Op) *dupChecker {
	return &dupChecker{op: op, byKey: map[[2]int64]int{}, byRange: map[int64][]Row{}, byName: map[nameKey]int{}}
}

// add returns the line of an earlier conflicting row and a message, or 0.
func (d *dupChecker) add(r Row) (int, string) {
	switch d.op {
	case OpProcess:
		for _, o := range d.byRange[r.StreamID] {
			if !r.StartDate.After(o.EndDate.Time) && !o.StartDate.After(r.EndDate.Time) {
				return o.Line, fmt.Sprintf("stream %d: range %s..%s overlaps %s..%s", r.StreamID, r.StartDate, r.EndDate, o.StartDate, o.EndDate)
			}
		}
		d.byRange[r.StreamID] = append(d.byRange[r.StreamID], r)
		return 0, ""
	case OpCreateStream, OpCreatePattern, OpCreateCalc:
		k := nameKey{r.WorkspaceID, bodyName(r.Body)}
		if p, ok := d.byName[k]; ok {
			return p, fmt.Sprintf("a %s named %q in workspace %d is listed twice", d.op.entity(), k.name, k.ws)
		}
		d.byName[k] = r.Line
		return 0, ""
	case OpRerun, OpDownload:
		k := [2]int64{r.StreamID, r.JobID}
		if p, ok := d.byKey[k]; ok {
			return p, fmt.Sprintf("job %d of stream %d is listed twice", r.JobID, r.StreamID)
		}
		d.byKey[k] = r.Line
		return 0, ""
	default:
		k := [2]int64{r.StreamID, 0}
		if p, ok := d.byKey[k]; ok {
			return p, fmt.Sprintf("stream %d is listed twice", r.StreamID)
		}
		d.byKey[k] = r.Line
		return 0, ""
	}
}
