package datorama

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIError is a non-2xx answer (other than a 429 the client gave up waiting out, which
// is a *RateLimitError). Message comes from the body's "errors" property or its text,
// bounded, and never holds the token.
type APIError struct {
	Status       int
	Method       string
	PathTemplate string
	Message      string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.PathTemplate, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// RateLimitError says a call was answered 429 too many times in a row. Reset is when
// the window that refused it said it would reopen (zero when no header said so).
type RateLimitError struct {
	Method       string
	PathTemplate string
	Attempts     int
	Rate         Rate // the last 429's headers
	Reset        time.Time
}

func (e *RateLimitError) Error() string {
	s := fmt.Sprintf("%s %s: still rate limited (429) after %d attempts", e.Method, e.PathTemplate, e.Attempts)
	if !e.Reset.IsZero() {
		s += ", window reopens at " + e.Reset.UTC().Format(time.RFC3339)
	}
	return s
}

// RetryError says a transient failure outlasted the retries. Err is the last attempt's
// error (an *APIError, a *DecodeError or a transport error).
type RetryError struct {
	Method       string
	PathTemplate string
	Attempts     int
	Err          error
}

func (e *RetryError) Error() string {
	// Err already names the method and path.
	return fmt.Sprintf("giving up after %d attempts: %v", e.Attempts, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// DecodeError says a 2xx answer could not be read as what the endpoint returns: HTML
// instead of JSON, truncated or malformed JSON, or records the decoders refuse (Err is
// then a *RecordError or a *DuplicateError; errors.As finds them). No part of such an
// answer is ever returned.
type DecodeError struct {
	Status       int
	Method       string
	PathTemplate string
	Err          error
	Snippet      string // the start of the body, bounded, token-free
}

func (e *DecodeError) Error() string {
	how := "unreadable"
	if refused(e.Err) {
		how = "refused"
	}
	s := fmt.Sprintf("%s %s: %s %d answer: %v", e.Method, e.PathTemplate, how, e.Status, e.Err)
	if e.Snippet != "" {
		s += fmt.Sprintf(" (body starts %q)", e.Snippet)
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

// BodyTooLargeError says a 2xx answer was larger than any real answer to its request
// can be, and was refused: unread when its Content-Length said so, else after Limit
// bytes. The bound depends on the request (a stats page's on its pageSize); see the
// bounds in client.go. A retry cannot help, so the call fails at once.
type BodyTooLargeError struct {
	Method       string
	PathTemplate string
	Limit        int64 // the bound for this request, in bytes
	Size         int64 // the announced Content-Length; -1 when the body had none and ran past Limit
}

func (e *BodyTooLargeError) Error() string {
	size := "more than " + strconv.FormatInt(e.Limit, 10)
	if e.Size >= 0 {
		size = strconv.FormatInt(e.Size, 10)
	}
	return fmt.Sprintf("%s %s: answer of %s bytes is larger than the %s bound for this request; refused",
		e.Method, e.PathTemplate, size, formatBytes(e.Limit))
}

// formatBytes renders a byte count in MiB or KiB for messages.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', -1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// QueryError is a Query API answer with HTTP 200 and a non-empty "errors" property: the
// query parsed but failed at run time (timeout, too many rows). Parse errors are 422 and
// come back as *APIError. In a batch, Index is the failing query's position.
type QueryError struct {
	Index   int
	Errors  json.RawMessage
	Message string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("query %d failed: %s", e.Index, e.Message)
}

// ErrOutcomeUnknown is matched by the error of a request that changes state when it may
// have reached the server but no answer says what happened: a 5xx, a connection lost
// after sending, an unreadable 2xx. Process, rerun, rerun-all and creates are then not
// resent; PUT, PATCH and DELETE are (resending them is harmless), and their error
// matches it too when they still failed after such an attempt. Either way the caller
// must find out from the API (for example by listing the stream's jobs, or reading the
// stream) whether it took effect.
var ErrOutcomeUnknown = errors.New("the request may have taken effect")

// ErrInconsistentPages is matched when the stats pages kept repeating themselves after
// refetching; the listing is incomplete.
var ErrInconsistentPages = errors.New("stats pages repeat each other")

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsUnauthorized reports whether err is a 401 answer (missing or unknown token).
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsRejected reports whether err is a 422 answer: the API read the request and refused
// what it asks (the Query API's parse errors: an unknown or ambiguous field).
func IsRejected(err error) bool { return hasStatus(err, http.StatusUnprocessableEntity) }

// IsUnsupported reports whether err says the endpoint is not there (404 or 405), e.g. a
// Query API host without /v1/query-batch.
func IsUnsupported(err error) bool {
	return hasStatus(err, http.StatusNotFound) || hasStatus(err, http.StatusMethodNotAllowed)
}

// IsRefused reports whether err is a 4xx answer other than 429: the API refused the
// request itself, so sending it again cannot succeed.
func IsRefused(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests
}

// IsForbidden reports whether err is a 403 answer (the token may not see the resource).
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

// IsRateLimited reports whether err is a rate-limit refusal: a *RateLimitError, a 429
// *APIError, or a quota error.
func IsRateLimited(err error) bool {
	var rl *RateLimitError
	return errors.As(err, &rl) || hasStatus(err, http.StatusTooManyRequests) || errors.Is(err, ErrQuotaExhausted)
}

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// errorMessage extracts a message from an error body: the "errors" property (an array
// of strings or objects, or a string), else "message"/"error", else the text. HTML is
// reduced to its text. The result is bounded and has the tokens removed, before it is
// cut, so no part of a token survives the cut.
func errorMessage(body []byte, tokens ...string) string {
	body = bytes.TrimSpace(body)
	msg := ""
	if len(body) > 0 && body[0] == '{' {
		var env struct {
			Errors  json.RawMessage `json:"errors"`
			Message json.RawMessage `json:"message"`
			Error   json.RawMessage `json:"error"`
		}
		if json.Unmarshal(body, &env) == nil {
			for _, raw := range []json.RawMessage{env.Errors, env.Message, env.Error} {
				if m := messageOf(raw); m != "" {
					msg = m
					break
				}
			}
		}
	}
	if msg == "" {
		msg = string(body)
		if looksHTML(body) {
			msg = htmlText(msg)
		}
	}
	return clean(msg, 300, tokens...)
}

// messageOf renders an "errors"-like value: strings joined with "; ", other values as
// compact JSON.
func messageOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, item := range list {
			if m := messageOf(item); m != "" {
				parts = append(parts, m)
			}
		}
		return strings.Join(parts, "; ")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		for _, k := range []string{"message", "error", "description"} {
			if m := messageOf(obj[k]); m != "" {
				return m
			}
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}

// clean removes the tokens, collapses whitespace and bounds s to n bytes on a rune
// boundary.
func clean(s string, n int, tokens ...string) string {
	for _, t := range tokens {
		if t != "" {
			s = strings.ReplaceAll(s, t, "[token]")
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if len(s) > n {
		s = cutUTF8(s, n) + "…"
	}
	return s
}

// cutUTF8 returns at most the first n bytes of s, cut on a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// looksHTML reports whether a body is markup rather than JSON: an HTML error page from a
// proxy or load balancer. No JSON document starts with '<'.
func looksHTML(body []byte) bool {
	body = bytes.TrimSpace(body)
	return len(body) > 0 && body[0] == '<'
}

// htmlText drops tags, keeping the text between them.
func htmlText(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}
