package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/config"
)

func init() { register(newConfigCommand) }

func newConfigCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration (schedules.yaml)",
		Example: `  drextract config check
  drextract config show --format json`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newConfigCheckCommand(g), newConfigShowCommand(g))
	return cmd
}

type configCheckOptions struct {
	skipTokens bool
	configSet  bool // --config given explicitly: a missing file is then an error
}

func (o *configCheckOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.skipTokens, "skip-tokens", false, "do not read the token sources (for checking a file on a machine without the secrets)")
}

func newConfigCheckCommand(g *globalOptions) *cobra.Command {
	var opts configCheckOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file and its token sources",
		Long: `Validate the configuration file (--config, default ./schedules.yaml): unknown keys, wrong
types, cron expressions, entities, selections, report definitions, and that every token
source yields a token (variables set, files readable; a token file readable by group or
others is a warning). Tokens are never printed.

Each mistake is printed on its own line as FILE:LINE: KEY: MESSAGE, on stderr.
Without a file at the default path, the defaults (DATORAMA_TOKEN) are checked.

Exit codes: 0 valid, 2 invalid (or no such file), 1 other failure.`,
		Example: `  drextract config check
  drextract config check --config /etc/drextract/schedules.yaml --skip-tokens`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.configSet = cmd.Flag("config").Changed
			return runConfigCheck(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd)
	return cmd
}

func runConfigCheck(_ context.Context, opts configCheckOptions, g *globalOptions, _ []string) error {
	vopts := config.ValidateOptions{CheckTokens: !opts.skipTokens}
	cfg, err := config.LoadWithOptions(g.configPath, vopts)
	defaults := false
	if errors.Is(err, fs.ErrNotExist) && !opts.configSet {
		defaults = true
		cfg = config.Default()
		err = cfg.Validate(vopts)
	}
	if cfg != nil {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(g.stderr, "warning: %s\n", w)
		}
	}
	if es := config.AsErrors(err); es != nil {
		for _, e := range es {
			fmt.Fprintln(g.stderr, e)
		}
		name := g.configPath
		if defaults {
			name = "the default configuration"
		}
		what := "mistakes"
		if len(es) == 1 {
			what = "mistake"
		}
		return usage(fmt.Errorf("%s is invalid (%d %s listed above)", name, len(es), what))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return usage(err)
	}
	if err != nil {
		return err
	}
	n := len(cfg.TokenSources())
	prefix := ""
	if defaults {
		prefix = fmt.Sprintf("no %s, defaults: ", g.configPath)
	}
	_, err = fmt.Fprintf(g.stdout, "ok: %s%d schedules, %d reports, %d token sources\n", prefix, len(cfg.Schedules), len(cfg.Reports), n)
	return err
}

type configShowOptions struct {
	format string
}

func newConfigShowCommand(g *globalOptions) *cobra.Command {
	var opts configShowOptions
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print each effective setting and where it came from",
		Long: `show prints the settings drextract would use, after the precedence
flag > environment variable > schedules.yaml > default, and where each one came from:
the API base URL (--base-url, DATORAMA_BASE_URL, api.base_url or api.region), the tokens
(DATORAMA_TOKEN and DATORAMA_TOKEN_2, _3, … when set, else api.tokens) and the data
directory (--data-dir, DREXTRACT_DATA_DIR, store.data_dir, ./data). Tokens are shown as
fingerprints (tok_ and 8 hex digits), never as themselves.

Exit codes: 0 ok, 1 failure, 2 usage or invalid configuration.`,
		Example: `  drextract config show
  DATORAMA_BASE_URL=http://127.0.0.1:8080 drextract config show --format json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfigShow(cmd.Context(), cmd, opts, g, args)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text or json")
	return cmd
}

// shownSetting is one line of config show.
type shownSetting struct {
	Setting string `json:"setting"`
	Value   any    `json:"value"`
	Origin  string `json:"origin"`
}

func runConfigShow(_ context.Context, cmd *cobra.Command, opts configShowOptions, g *globalOptions, _ []string) error {
	if opts.format != "text" && opts.format != "json" {
		return usage(fmt.Errorf("unknown --format %q: use text or json", opts.format))
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	c := w.cfg
	origin := func(key string) string { return c.Origins[key].String() }
	file := "none (defaults)"
	if c.Path != "" {
		file = c.Path
	}
	var tokens []string
	toks, _, terr := c.Tokens()
	for _, t := range toks {
		tokens = append(tokens, t.Fingerprint()+" ("+t.Source+")")
	}
	if terr != nil {
		tokens = append(tokens, "unreadable: "+strings.ReplaceAll(terr.Error(), "\n", "; "))
	}
	configFrom := "default"
	if cmd.Flag("config").Changed {
		configFrom = "--config"
	}
	settings := []shownSetting{
		{"config", file, configFrom},
		{config.SettingBaseURL, c.API.BaseURL, origin(config.SettingBaseURL)},
		{config.SettingTokens, tokens, origin(config.SettingTokens)},
		{config.SettingDataDir, c.Store.DataDir, origin(config.SettingDataDir)},
		{"store.duckdb", c.Store.DuckDBPath(), "store.duckdb under the data directory"},
		{"store.serving", c.Store.ServingPath(), "store.serving under the data directory"},
		{"store.parquet", c.Store.ParquetDir(), "store.parquet under the data directory"},
		{"selections_dir", c.SelectionsDir, "selections_dir"},
	}
	if opts.format == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(settings)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, s := range settings {
		v := fmt.Sprint(s.Value)
		if list, ok := s.Value.([]string); ok {
			v = strings.Join(list, ", ")
			if v == "" {
				v = "none"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Setting, v, s.Origin)
	}
	return tw.Flush()
}
