package load

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrNotReadOnly is wrapped by every refusal of CheckReadOnly.
var ErrNotReadOnly = errors.New("only a single SELECT or WITH statement is allowed")

// ReadOnlyError says why a query was refused and where.
type ReadOnlyError struct {
	Reason string
	Offset int // byte offset in the query, -1 when it concerns the whole query
}

func (e *ReadOnlyError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("query refused: %s (%v)", e.Reason, ErrNotReadOnly)
	}
	return fmt.Sprintf("query refused: %s at byte %d (%v)", e.Reason, e.Offset, ErrNotReadOnly)
}

func (e *ReadOnlyError) Unwrap() error { return ErrNotReadOnly }

// forbidden are words that have no business in a read-only query. The first word must be
// SELECT or WITH anyway; these catch data-changing statements behind a WITH
// ("WITH x AS (…) DELETE …") and anything a future grammar might nest. A column that
// happens to bear one of these names must be double-quoted.
var forbidden = map[string]bool{
	"insert": true, "update": true, "delete": true, "merge": true, "create": true,
	"drop": true, "alter": true, "attach": true, "detach": true, "copy": true,
	"pragma": true, "truncate": true, "install": true, "load": true, "checkpoint": true,
	"vacuum": true, "export": true, "import": true, "call": true,
}

// CheckReadOnly accepts only one SELECT or WITH statement (an optional trailing semicolon
// aside) and refuses everything else with a *ReadOnlyError: other statements, several
// statements, data-changing words outside literals, unterminated literals or comments. It
// lexes the way DuckDB does (nested /* */ comments, -- comments ending at \n or \r,
// 'strings' and E'strings', "identifiers", $tag$strings$tag$), so a comment or a string cannot
// hide a second statement. It is a pure function; Query also has DuckDB's parser confirm
// the verdict.
func CheckReadOnly(query string) error {
	if !utf8.ValidString(query) {
		return &ReadOnlyError{Reason: "the query is not valid UTF-8", Offset: -1}
	}
	toks, err := lexSQL(query)
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		return &ReadOnlyError{Reason: "the query is empty", Offset: -1}
	}
	// Trailing semicolons end the one statement; any token after a semicolon starts another.
	end := len(toks)
	for end > 0 && toks[end-1].text == ";" {
		end--
	}
	toks = toks[:end]
	if len(toks) == 0 {
		return &ReadOnlyError{Reason: "the query is empty", Offset: -1}
	}
	for _, t := range toks {
		if t.kind == tokPunct && t.text == ";" {
			return &ReadOnlyError{Reason: "more than one statement (a semicolon is followed by more SQL)", Offset: t.pos}
		}
	}
	first := 0
	for first < len(toks) && toks[first].text == "(" {
		first++
	}
	if first == len(toks) || toks[first].kind != tokWord || (toks[first].text != "select" && toks[first].text != "with") {
		t := toks[min(first, len(toks)-1)]
		return &ReadOnlyError{Reason: fmt.Sprintf("the statement starts with %s, not SELECT or WITH", describe(t)), Offset: t.pos}
	}
	for _, t := range toks {
		if t.kind == tokWord && forbidden[t.text] {
			return &ReadOnlyError{Reason: fmt.Sprintf("%s is not allowed in a read-only query", strings.ToUpper(t.text)), Offset: t.pos}
		}
	}
	return nil
}

func describe(t token) string {
	if t.kind == tokWord {
		return strings.ToUpper(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type tokKind int

const (
	tokWord    tokKind = iota // keyword or bare identifier, lower-cased
	tokPunct                  // one byte of punctuation or an operator character
	tokLiteral                // string, quoted identifier, number, parameter
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentCont(c byte) bool { return isIdentStart(c) || c == '$' || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexSQL splits q into tokens, dropping whitespace and comments. Literals are kept as one
// token each, with their text left out: only their position matters.
func lexSQL(q string) ([]token, error) {
	var toks []token
	unterminated := func(what string, pos int) error {
		return &ReadOnlyError{Reason: "unterminated " + what, Offset: pos}
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' && q[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			start, depth := i, 0
			for i < len(q) {
				if q[i] == '/' && i+1 < len(q) && q[i+1] == '*' {
					depth++
					i += 2
				} else if q[i] == '*' && i+1 < len(q) && q[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			if depth != 0 {
				return nil, unterminated("comment", start)
			}
		case c == '\'':
			end, ok := scanQuoted(q, i, '\'', false)
			if !ok {
				return nil, unterminated("string", i)
			}
			toks = append(toks, token{tokLiteral, "'", i})
			i = end
		case (c == 'e' || c == 'E') && i+1 < len(q) && q[i+1] == '\'':
			end, ok := scanQuoted(q, i+1, '\'', true)
			if !ok {
				return nil, unterminated("string", i)
			}
			toks = append(toks, token{tokLiteral, "'", i})
			i = end
		case c == '"':
			end, ok := scanQuoted(q, i, '"', false)
			if !ok {
				return nil, unterminated("quoted identifier", i)
			}
			toks = append(toks, token{tokLiteral, `"`, i})
			i = end
		case c == '$':
			if i+1 < len(q) && isDigit(q[i+1]) { // $1: a positional parameter
				j := i + 1
				for j < len(q) && isDigit(q[j]) {
					j++
				}
				toks = append(toks, token{tokLiteral, "$", i})
				i = j
				continue
			}
			// $tag$…$tag$ (tag possibly empty) is a string; any other $ is punctuation.
			j := i + 1
			if j < len(q) && isIdentStart(q[j]) {
				j++
				for j < len(q) && isIdentStart(q[j]) || j < len(q) && isDigit(q[j]) {
					j++
				}
			}
			if j < len(q) && q[j] == '$' {
				delim := q[i : j+1]
				k := strings.Index(q[j+1:], delim)
				if k < 0 {
					return nil, unterminated("dollar-quoted string", i)
				}
				toks = append(toks, token{tokLiteral, "$", i})
				i = j + 1 + k + len(delim)
				continue
			}
			toks = append(toks, token{tokPunct, "$", i})
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(q) && isIdentCont(q[j]) {
				j++
			}
			toks = append(toks, token{tokWord, strings.ToLower(q[i:j]), i})
			i = j
		case isDigit(c):
			// Only the number itself: DuckDB lexes "1e'x'" as 1 followed by an E'' string,
			// so letters after a number start a new token here too.
			j := i + 1
			for j < len(q) && (isDigit(q[j]) || q[j] == '_' && j+1 < len(q) && isDigit(q[j+1])) {
				j++
			}
			if j < len(q) && q[j] == '.' {
				j++
				for j < len(q) && (isDigit(q[j]) || q[j] == '_' && j+1 < len(q) && isDigit(q[j+1])) {
					j++
				}
			}
			if j < len(q) && (q[j] == 'e' || q[j] == 'E') {
				k := j + 1
				if k < len(q) && (q[k] == '+' || q[k] == '-') {
					k++
				}
				if k < len(q) && isDigit(q[k]) {
					for j = k; j < len(q) && isDigit(q[j]); j++ {
					}
				}
			}
			toks = append(toks, token{tokLiteral, "0", i})
			i = j
		default:
			toks = append(toks, token{tokPunct, string(c), i})
			i++
		}
	}
	return toks, nil
}

// scanQuoted returns the index just past the literal that opens at q[start] with quote.
// A doubled quote stands for itself; with backslash set (E'…' strings), a backslash
// escapes the next byte.
func scanQuoted(q string, start int, quote byte, backslash bool) (int, bool) {
	for i := start + 1; i < len(q); i++ {
		switch {
		case backslash && q[i] == '\\':
			i++
		case q[i] == quote:
			if i+1 < len(q) && q[i+1] == quote {
				i++
				continue
			}
			return i + 1, true
		}
	}
	return 0, false
}
