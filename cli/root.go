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
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
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
	// atExit runs once the command has returned and its exit code is decided (waiting
	// for notifications to be delivered).
	atExit []func()
	// logOut is stderr for the logs and the final error, one write at a time: a
	// notification being delivered in the background logs while the command prints.
	logOut io.Writer
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// commandFactories are the constructors of the top-level commands; each command's file
// registers its own in init, so commands can be added without touching this file.
var commandFactories []func(*globalOptions) *cobra.Command

func register(f func(*globalOptions) *cobra.Command) { commandFactories = append(commandFactories, f) }

// usageError says the command line, its input or the configuration is wrong, so nothing
// ran: exit 2. Commands classify such errors once, where they parse them.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usage marks err as a usage error; nil stays nil.
func usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// exitCode maps what a command returned to the process exit code. It is the one place
// exit codes are chosen: by the error's type, never by its text.
func exitCode(err error) int {
	var re *runError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &re):
		return re.code()
	case errors.Is(err, context.Canceled):
		return ExitCanceled
	case isUsage(err):
		return ExitUsage
	case errors.Is(err, datorama.ErrQuotaExhausted):
		return ExitQuotaExhausted
	}
	return ExitFailure
}

// isUsage reports whether err means the user's input was wrong: a flag or argument, the
// configuration, a selection, a CSV file or a plan over its guard rails.
func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue) || errors.Is(err, action.ErrBadInput) || config.AsErrors(err) != nil ||
		errors.As(err, new(*config.Error))
}

// args turns a cobra argument check's failure into a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error { return usage(check(cmd, a)) }
}

// completionExamples loads drextract's completion into each shell cobra supports.
var completionExamples = map[string]string{
	"bash":       "  source <(drextract completion bash)",
	"zsh":        `  drextract completion zsh > "${fpath[1]}/_drextract"`,
	"fish":       "  drextract completion fish > ~/.config/fish/completions/drextract.fish",
	"powershell": "  drextract completion powershell | Out-String | Invoke-Expression",
}

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use: "drextract",
		// A word that names no command is a usage error, not cobra's text to match.
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) > 0 {
				return usage(fmt.Errorf("unknown command %q for \"drextract\"", a[0]))
			}
			return nil
		},
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		Short:         "Crawl a Datorama account into DuckDB, and drive bulk actions from SQL",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `drextract crawls Datorama (Marketing Cloud Intelligence) workspaces, data streams and
jobs into a DuckDB file, under the API's rate limits, and sends bulk actions chosen by SQL.

Exit codes: 0 ok, 1 failure, 2 usage, 3 partial (some parents incomplete),
4 quota exhausted (resume after the reset), 130 interrupted.`,
		Example: `  drextract config check
  drextract extract
  drextract query "select status, count(*) from jobs group by 1"`,
	}
	f := root.PersistentFlags()
	f.StringVar(&g.configPath, "config", "./schedules.yaml", "configuration file")
	f.StringVar(&g.baseURL, "base-url", "", "API base URL, e.g. https://api.datorama.com; beats DATORAMA_BASE_URL and the config")
	f.StringVar(&g.dataDir, "data-dir", "", "data directory (DuckDB store, serving copy, Parquet); beats DREXTRACT_DATA_DIR and the config's store.data_dir (default ./data)")
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	cmds := make([]*cobra.Command, 0, len(commandFactories))
	for _, mk := range commandFactories {
		cmds = append(cmds, mk(g))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	// cobra's own commands show an example too, as every --help does.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  drextract help extract"
		case "completion":
			c.Example = "  source <(drextract completion bash)"
			for _, shell := range c.Commands() {
				shell.Example = completionExamples[shell.Name()]
			}
		}
	}
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
	if stderr != nil {
		g.logOut = &lockedWriter{w: stderr}
		stderr = g.logOut
	}
	defer func() {
		for _, f := range g.atExit {
			f()
		}
	}()
	root := newRootCommand(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCode(err)
	if err == nil {
		return code
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	if code == ExitUsage {
		path := "drextract"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Try: %s --help\n", path)
	}
	return code
}
