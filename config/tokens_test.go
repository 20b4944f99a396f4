package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/drextract/drextract/datorama"
)

// TestTokens covers issue 7 item 6: tokens come only from the environment variables and
// files the config names, a token file others may read gives a warning, and no error or
// warning ever contains a token.
func TestTokens(t *testing.T) {
	const secret = "dato-api-0f1e2d3c-SECRET-9a8b"
	type file struct {
		name, content string
		mode          os.FileMode
	}
	cases := []struct {
		name        string
		tokens      string // the api.tokens list, YAML; "" leaves the key out
		env         map[string]string
		files       []file
		wantSources []string
		wantKind    error  // nil: success
		wantWarn    string // substring of the only warning; "" for none
	}{
		{
			name:        "env",
			tokens:      "[{env: DRX_A}, {env: DRX_B}]",
			env:         map[string]string{"DRX_A": secret, "DRX_B": " tok-b\n"},
			wantSources: []string{"env:DRX_A", "env:DRX_B"},
		},
		{
			name:        "private file, relative to the config",
			tokens:      "[{file: token}]",
			files:       []file{{"token", secret + "\n", 0o600}},
			wantSources: []string{"file:DIR/token"},
		},
		{
			name:        "file readable by others warns",
			tokens:      "[{file: token}]",
			files:       []file{{"token", secret, 0o644}},
			wantSources: []string{"file:DIR/token"},
			wantWarn:    "token file DIR/token is accessible by group or others (mode 0644); chmod 600 it",
		},
		{
			name:        "file readable by group warns",
			tokens:      "[{file: token}]",
			files:       []file{{"token", secret, 0o640}},
			wantSources: []string{"file:DIR/token"},
			wantWarn:    "(mode 0640)",
		},
		{
			name:     "unset variable",
			tokens:   "[{env: DRX_A}, {env: DRX_UNSET}]",
			env:      map[string]string{"DRX_A": secret},
			wantKind: ErrMissingToken,
		},
		{
			name:     "empty variable",
			tokens:   "[{env: DRX_A}]",
			env:      map[string]string{"DRX_A": "  "},
			wantKind: ErrMissingToken,
		},
		{
			name:     "missing file",
			tokens:   "[{file: nope}]",
			wantKind: ErrMissingToken,
		},
		{
			name:     "empty file",
			tokens:   "[{file: token}]",
			files:    []file{{"token", "\n", 0o600}},
			wantKind: ErrMissingToken,
		},
		{
			name:     "file with two lines",
			tokens:   "[{file: token}]",
			files:    []file{{"token", secret + "\n" + secret + "\n", 0o600}},
			wantKind: ErrBadTokenSource,
		},
		{
			name:        "same token twice warns",
			tokens:      "[{env: DRX_A}, {file: token}]",
			env:         map[string]string{"DRX_A": secret},
			files:       []file{{"token", secret, 0o600}},
			wantSources: []string{"env:DRX_A"},
			wantWarn:    "file:DIR/token holds the same token as env:DRX_A",
		},
		{
			name:        "default: DATORAMA_TOKEN, then _2, _3 up to the first gap",
			env:         map[string]string{EnvToken: secret, EnvToken + "_2": "t2", EnvToken + "_3": "t3", EnvToken + "_5": "t5"},
			wantSources: []string{"env:DATORAMA_TOKEN", "env:DATORAMA_TOKEN_2", "env:DATORAMA_TOKEN_3"},
		},
		{
			name:     "default without DATORAMA_TOKEN",
			env:      map[string]string{EnvToken + "_2": secret},
			wantKind: ErrMissingToken,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(dir, f.name)
				if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, f.mode); err != nil { // umask may have cleared bits
					t.Fatal(err)
				}
			}
			src := "version: 1\n"
			if tc.tokens != "" {
				src += "api:\n  tokens: " + tc.tokens + "\n"
			}
			path := filepath.Join(dir, "schedules.yaml")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{EnvToken, EnvToken + "_2", EnvToken + "_3", EnvToken + "_4", EnvToken + "_5"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			toks, warns, err := c.Tokens()
			// Validate with CheckTokens must agree with Tokens.
			verr := c.Validate(ValidateOptions{CheckTokens: true})

			var texts []string
			for _, w := range warns {
				texts = append(texts, w.String())
			}
			if err != nil {
				texts = append(texts, err.Error())
			}
			for _, s := range texts {
				if strings.Contains(s, secret) || strings.Contains(s, "tok-b") {
					t.Errorf("a message contains the token: %s", s)
				}
			}

			if tc.wantKind != nil {
				if !errors.Is(err, tc.wantKind) || !errors.Is(verr, tc.wantKind) {
					t.Fatalf("Tokens: %v; Validate: %v; want %v from both", err, verr, tc.wantKind)
				}
				if !strings.HasPrefix(err.Error(), path+":") {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil || verr != nil {
				t.Fatalf("Tokens: %v; Validate: %v", err, verr)
			}
			var sources []string
			for _, tok := range toks {
				sources = append(sources, strings.ReplaceAll(tok.Source, dir, "DIR"))
				if tok.Value() == "" || strings.TrimSpace(tok.Value()) != tok.Value() {
					t.Errorf("token from %s has value %q, want it trimmed and non-empty", tok.Source, tok.Value())
				}
			}
			if fmt.Sprint(sources) != fmt.Sprint(tc.wantSources) {
				t.Errorf("sources = %v, want %v", sources, tc.wantSources)
			}
			if toks[0].Value() != strings.TrimSpace(tc.env[strings.TrimPrefix(toks[0].Source, "env:")]) && !strings.HasPrefix(toks[0].Source, "file:") {
				t.Errorf("first token has the wrong value")
			}
			if strings.HasPrefix(toks[0].Source, "file:") && toks[0].Value() != secret {
				t.Errorf("file token has the wrong value")
			}
			switch {
			case tc.wantWarn == "" && len(warns) > 0:
				t.Errorf("unexpected warnings: %v", warns)
			case tc.wantWarn != "":
				want := strings.ReplaceAll(tc.wantWarn, "DIR", dir)
				if len(warns) != 1 || !strings.Contains(warns[0].String(), want) {
					t.Errorf("warnings = %v, want one containing %q", warns, want)
				}
				if len(c.Warnings) != len(warns) {
					t.Errorf("Validate(CheckTokens) recorded warnings %v, Tokens returned %v", c.Warnings, warns)
				}
			}
		})
	}
}

// TestTokenNeverPrinted: whatever prints a Token — fmt with any verb, inside slices, maps
// and structs (exported or unexported field), errors, JSON, YAML, slog — shows its source
// and fingerprint, never its value.
func TestTokenNeverPrinted(t *testing.T) {
	const value = "dato-api-0f1e2d3c-NEVER-PRINT-ME"
	tok := NewToken("env:DRX_A", value)
	if tok.Value() != value {
		t.Fatalf("Value() = %q", tok.Value())
	}
	type holder struct {
		Exported Token
		hidden   Token
		ptr      *Token
	}
	h := holder{Exported: tok, hidden: tok, ptr: &tok}

	var outputs = map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T %v"} {
		outputs["token "+verb] = fmt.Sprintf(verb, tok)
		outputs["pointer "+verb] = fmt.Sprintf(verb, &tok)
		outputs["slice "+verb] = fmt.Sprintf(verb, []Token{tok, tok})
		outputs["map "+verb] = fmt.Sprintf(verb, map[string]Token{"a": tok})
		outputs["struct "+verb] = fmt.Sprintf(verb, h)
		outputs["struct pointer "+verb] = fmt.Sprintf(verb, &h)
	}
	outputs["Sprint"] = fmt.Sprint(tok, &tok, h)
	outputs["Sprintln"] = fmt.Sprintln(tok, []Token{tok})
	outputs["error"] = fmt.Errorf("calling with %v: %w", tok, errors.New("boom")).Error()
	for name, v := range map[string]any{"token": tok, "slice": []Token{tok}, "struct": h, "map": map[string]Token{"a": tok}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs["json "+name] = string(b)
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("yaml.Marshal(%s): %v", name, err)
		}
		outputs["yaml "+name] = string(y)
	}
	var logs bytes.Buffer
	for _, hd := range []slog.Handler{
		slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	} {
		l := slog.New(hd)
		l.Debug("calling", "token", tok, "tokens", []Token{tok}, "holder", h, slog.Any("ptr", &tok))
		l.Error("failed", "err", fmt.Errorf("with %s", tok))
	}
	outputs["slog"] = logs.String()

	fp := datorama.Fingerprint(value)
	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, "NEVER") {
			t.Errorf("%s prints the token: %s", name, out)
		}
	}
	for _, name := range []string{"token %v", "token %s", "slice %v", "json token", "yaml token", "slog", "error"} {
		if !strings.Contains(outputs[name], fp) || !strings.Contains(outputs[name], "env:DRX_A") {
			t.Errorf("%s = %q, want the source and fingerprint %s", name, outputs[name], fp)
		}
	}
	if got, want := tok.String(), "env:DRX_A ("+fp+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
