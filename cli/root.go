// Package cli is drextract's command line: it parses flags and wires the packages
// together. It holds no crawling, storage or API logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, the same for every command.
const (
	ExitOK             = 0
	ExitFailure        = 1
	ExitUsage          = 2
	ExitPartial        = 3 // the run finished but some parents stayed incomplete
	ExitQuotaExhausted = 4 // stopped cleanly: daily quota gone, resume after the reset
	ExitCanceled       = 130
)

// Version is set at build time with -ldflags "-X github.com/drextract/drextract/cli.Version=…".
var Version = "dev"

// globalOptions are the flags every command shares.
type globalOptions struct {
	configPath string
	baseURL    string
	dataDir    string
	logLevel   string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

// commandFactories are the constructors of the top-level commands; each command's file
// registers its own in init, so commands can be added without touching this file.
var commandFactories []func(*globalOptions) *cobra.Command

func register(f func(*globalOptions) *cobra.Command) { commandFactories = append(commandFactories, f) }

// exitError carries an exit code chosen by a command together with its error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit attaches an exit code to err.
func withExit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:           "drextract",
		Short:         "Crawl a Datorama account into DuckDB, and drive bulk actions from SQL",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `drextract crawls Datorama (Marketing Cloud Intelligence) workspaces, data streams and
jobs into a DuckDB file, under the API's rate limits, and sends bulk actions chosen by SQL.

Exit codes: 0 ok, 1 failure, 2 usage, 3 partial (some parents incomplete),
4 quota exhausted (resume after the reset), 130 interrupted.`,
	}
	f := root.PersistentFlags()
	f.StringVar(&g.configPath, "config", "./schedules.yaml", "configuration file")
	f.StringVar(&g.baseURL, "base-url", "", "API base URL (overrides the config), e.g. https://api.datorama.com")
	f.StringVar(&g.dataDir, "data-dir", "./data", "data directory (DuckDB store, serving copy, Parquet)")
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	cmds := make([]*cobra.Command, 0, len(commandFactories))
	for _, mk := range commandFactories {
		cmds = append(cmds, mk(g))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// Do runs drextract with args and returns the process exit code.
func Do(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return DoContext(ctx, args, stdin, stdout, stderr)
}

// DoContext is Do with a caller-supplied context, for tests.
func DoContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCommand(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.Is(err, context.Canceled):
		code = ExitCanceled
	case isUsageError(err):
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	if code == ExitUsage {
		fmt.Fprintln(stderr, "Try: drextract --help")
	}
	return code
}

// isUsageError recognises cobra's flag and argument errors.
func isUsageError(err error) bool {
	var fe *flagError
	return errors.As(err, &fe) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.Contains(err.Error(), "arg(s)")
}

type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }
