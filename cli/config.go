package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/config"
)

func init() { register(newConfigCommand) }

func newConfigCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration (schedules.yaml)",
		Args:  args(cobra.NoArgs),
	}
	cmd.AddCommand(newConfigCheckCommand(g))
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
