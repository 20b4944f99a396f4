package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/drextract/drextract/datorama"
)

// maxTokenFile bounds what is read from a token file; a token is a few dozen bytes.
const maxTokenFile = 64 << 10

// Secret is a secret (an API token, a PostgreSQL DSN) and where it came from. It never
// prints its value: fmt (every verb), encoding/json, encoding.TextMarshaler, YAML and
// slog all show only the Source and the fingerprint. Only Value returns the secret, for
// the one place that uses it (an Authorization header, a connection).
type Secret = Token

// Token is an API token and where it came from: see Secret.
type Token struct {
	Source string // "env:NAME" or "file:PATH"
	secret *secret
}

// secret holds the value inside a closure: fmt, printing a struct that holds a Token in
// an unexported field (where it cannot call Token's methods, and where even a pointer is
// followed for verbs such as %s), can only show the closure's address.
type secret struct{ get func() string }

// NewSecret makes a Secret from a value obtained elsewhere (tests, a simulator).
func NewSecret(source, value string) Secret { return NewToken(source, value) }

// NewToken makes a Token from a value obtained elsewhere (tests, a simulator).
func NewToken(source, value string) Token {
	return Token{Source: source, secret: &secret{get: func() string { return value }}}
}

// Value returns the token itself. Use it only to authenticate a request.
func (t Token) Value() string {
	if t.secret == nil || t.secret.get == nil {
		return ""
	}
	return t.secret.get()
}

// Fingerprint names the token safely: datorama.Fingerprint of its value.
func (t Token) Fingerprint() string { return datorama.Fingerprint(t.Value()) }

// String is "SOURCE (tok_xxxxxxxx)".
func (t Token) String() string { return t.Source + " (" + t.Fingerprint() + ")" }

// GoString is used by %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("config.Token{Source: %q, Fingerprint: %q}", t.Source, t.Fingerprint())
}

// Format makes every fmt verb (%s %v %+v %#v %q %x %d …) print the redacted form.
func (t Token) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, t.GoString())
	case verb == 'q':
		io.WriteString(f, strconv.Quote(t.String()))
	default:
		io.WriteString(f, t.String())
	}
}

// MarshalJSON writes {"source": …, "fingerprint": …}.
func (t Token) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"source": t.Source, "fingerprint": t.Fingerprint()})
}

// MarshalText writes the String form, for encoders that use encoding.TextMarshaler.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalYAML writes the same fields as MarshalJSON.
func (t Token) MarshalYAML() (any, error) {
	return map[string]string{"source": t.Source, "fingerprint": t.Fingerprint()}, nil
}

// LogValue makes slog log the source and the fingerprint.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("source", t.Source), slog.String("fingerprint", t.Fingerprint()))
}

// TokenSources lists where tokens are read from: api.tokens as written, or with no
// api.tokens, DATORAMA_TOKEN and then DATORAMA_TOKEN_2, _3, … up to the first unset one.
// It reads no token.
func (c *Config) TokenSources() []TokenSource {
	if !c.defaultAPI {
		return c.API.Tokens
	}
	return defaultSources(os.LookupEnv)
}

func defaultSources(lookupEnv func(string) (string, bool)) []TokenSource {
	out := []TokenSource{{Env: EnvToken}}
	for n := 2; ; n++ {
		name := fmt.Sprintf("%s_%d", EnvToken, n)
		if v, ok := lookupEnv(name); !ok || v == "" {
			return out
		}
		out = append(out, TokenSource{Env: name})
	}
}

// Tokens reads every token source, in the order listed (with no api.tokens:
// DATORAMA_TOKEN, then DATORAMA_TOKEN_2, _3, … up to the first unset one). The error is an
// Errors with one ErrMissingToken or ErrBadTokenSource per unusable source; the warnings
// (a token file others may read, two sources holding the same token) are for the caller
// to log. No message contains a token.
func (c *Config) Tokens() ([]Token, []Warning, error) {
	toks, warns, errs := c.readTokens(os.LookupEnv)
	if len(errs) > 0 {
		return nil, warns, errs.err()
	}
	return toks, warns, nil
}

func (c *Config) readTokens(lookupEnv func(string) (string, bool)) ([]Token, []Warning, Errors) {
	var (
		toks  []Token
		warns []Warning
		errs  Errors
	)
	fail := func(kind error, key, format string, args ...any) {
		errs = append(errs, &Error{File: c.Path, Line: c.line(key), Key: key, Kind: kind, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(key, format string, args ...any) {
		warns = append(warns, Warning{File: c.Path, Line: c.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]string{} // token value → source, to spot duplicates
	accept := func(key string, t Token) {
		if prev, dup := seen[t.Value()]; dup {
			warn(key, "%s holds the same token as %s; it adds no quota", t.Source, prev)
			return
		}
		seen[t.Value()] = t.Source
		toks = append(toks, t)
	}

	if c.defaultAPI {
		const key = "api.tokens"
		v, ok := lookupEnv(EnvToken)
		if !ok || strings.TrimSpace(v) == "" {
			fail(ErrMissingToken, key, "environment variable %s is not set (no api.tokens listed, so it is the token source)", EnvToken)
			return nil, warns, errs
		}
		for _, src := range defaultSources(lookupEnv) {
			name := src.Env
			v, _ := lookupEnv(name)
			if t, msg := checkToken(v); msg != "" {
				fail(ErrBadTokenSource, key, "environment variable %s %s", name, msg)
			} else {
				accept(key, NewToken("env:"+name, t))
			}
		}
		return toks, warns, errs
	}

	for i, s := range c.API.Tokens {
		key := fmt.Sprintf("api.tokens[%d]", i)
		switch {
		case s.Env != "" && s.File == "" && envRE.MatchString(s.Env):
			key += ".env"
			v, ok := lookupEnv(s.Env)
			switch {
			case !ok:
				fail(ErrMissingToken, key, "environment variable %s is not set", s.Env)
			case strings.TrimSpace(v) == "":
				fail(ErrMissingToken, key, "environment variable %s is empty", s.Env)
			default:
				if t, msg := checkToken(v); msg != "" {
					fail(ErrBadTokenSource, key, "environment variable %s %s", s.Env, msg)
				} else {
					accept(key, NewToken(s.String(), t))
				}
			}
		case s.File != "" && s.Env == "":
			key += ".file"
			v, warning, err := readTokenFile(s.File)
			if warning != "" {
				warn(key, "%s", warning)
			}
			if err != "" {
				fail(ErrMissingToken, key, "%s", err)
				continue
			}
			if t, msg := checkToken(v); msg != "" {
				fail(ErrBadTokenSource, key, "token file %s %s", s.File, msg)
			} else {
				accept(key, NewToken(s.String(), t))
			}
		default:
			fail(ErrBadTokenSource, key, "want {env: NAME} or {file: PATH}")
		}
	}
	if len(c.API.Tokens) == 0 && len(errs) == 0 {
		fail(ErrMissingToken, "api.tokens", "no token sources listed")
	}
	return toks, warns, errs
}

// readTokenFile returns the file's content, a warning when group or others may read it,
// and a problem (never including the content) when it cannot be used.
func readTokenFile(path string) (value, warning, problem string) {
	return readSecretFile(path, "token file")
}

// readSecretFile is readTokenFile for a file described as what ("token file", "DSN
// file").
func readSecretFile(path, what string) (value, warning, problem string) {
	f, err := os.Open(path)
	if err != nil {
		switch {
		case os.IsNotExist(err):
			return "", "", fmt.Sprintf("%s %s does not exist", what, path)
		case os.IsPermission(err):
			return "", "", fmt.Sprintf("%s %s is not readable by this user", what, path)
		}
		return "", "", fmt.Sprintf("cannot open %s %s", what, path)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", fmt.Sprintf("cannot stat %s %s", what, path)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Sprintf("%s %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		warning = fmt.Sprintf("%s %s is accessible by group or others (mode %04o); chmod 600 it", what, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", warning, fmt.Sprintf("cannot read %s %s", what, path)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", warning, fmt.Sprintf("%s %s is empty", what, path)
	}
	return string(b), warning, ""
}

// Read reads the secret the source names: the variable's value or the file's content,
// trimmed of surrounding white space. what names the secret in messages ("DSN"). The
// warning (a file others may read) is for the caller to log; the problem, when the
// secret cannot be read, never holds the secret.
func (s SecretSource) Read(what string, lookupEnv func(string) (string, bool)) (secret Secret, warning, problem string) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	switch {
	case s.Env != "" && s.File == "":
		v, ok := lookupEnv(s.Env)
		switch {
		case !ok:
			return Secret{}, "", fmt.Sprintf("environment variable %s is not set", s.Env)
		case strings.TrimSpace(v) == "":
			return Secret{}, "", fmt.Sprintf("environment variable %s is empty", s.Env)
		}
		return NewSecret(s.String(), strings.TrimSpace(v)), "", ""
	case s.File != "" && s.Env == "":
		v, warning, problem := readSecretFile(s.File, what+" file")
		if problem != "" {
			return Secret{}, warning, problem
		}
		return NewSecret(s.String(), strings.TrimSpace(v)), warning, ""
	}
	return Secret{}, "", "want {env: NAME} or {file: PATH}"
}

// PostgresDSN reads publish.postgres.dsn. It fails with an *Error (ErrMissingKey when
// there is no PostgreSQL target, ErrMissingToken when the source cannot be read) that
// never holds the DSN; the warnings are for the caller to log.
func (c *Config) PostgresDSN() (Secret, []Warning, error) {
	return c.readPostgresDSN(os.LookupEnv)
}

func (c *Config) readPostgresDSN(lookupEnv func(string) (string, bool)) (Secret, []Warning, error) {
	const key = "publish.postgres.dsn"
	pg := c.Postgres()
	if pg == nil {
		return Secret{}, nil, &Error{File: c.Path, Line: c.line("publish"), Key: "publish.postgres", Kind: ErrMissingKey,
			Msg: "no PostgreSQL target; add publish.postgres with a dsn source"}
	}
	sub := key + ".env"
	if pg.DSN.File != "" {
		sub = key + ".file"
	}
	sec, warning, problem := pg.DSN.Read("DSN", lookupEnv)
	var warns []Warning
	if warning != "" {
		warns = append(warns, Warning{File: c.Path, Line: c.line(sub), Key: sub, Msg: warning})
	}
	if problem != "" {
		return Secret{}, warns, &Error{File: c.Path, Line: c.line(sub), Key: sub, Kind: ErrMissingToken, Msg: problem}
	}
	return sec, warns, nil
}

// checkToken trims v and refuses values that cannot be a single token; msg says why
// without quoting the value.
func checkToken(v string) (token, msg string) {
	t := strings.TrimSpace(v)
	if t == "" {
		return "", "is empty"
	}
	for _, r := range t {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", "holds more than one word or line; want just the token"
		}
	}
	return t, ""
}
