package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/sim"
)

func init() { register(newSimCommand) }

// simOptions are the flags of `drextract sim`. The flag names are a contract that
// outside checks rely on; add, never rename.
type simOptions struct {
	addr          string
	seed          int64
	workspaces    int
	streams       int
	jobsPerStream int
	tokens        int
	platformLimit int
	queryLimit    int
	dailyQuota    int
	faults        string

	statsOrder         string
	maxPageSize        int
	lastRunStatus      string
	rerunNewIDs        bool
	errorBody          string
	queryBatch         bool
	countFailedCalls   bool
	bulkStatusMaxIDs   int
	lastNIncludesToday bool
	queryMaxRows       int
	viewerTokens       bool
}

func (o *simOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.addr, "addr", "127.0.0.1:0", "loopback address to listen on (port 0 picks a free port)")
	f.Int64Var(&o.seed, "seed", 1, "seed of the generated account; the same seed gives the same account")
	f.IntVar(&o.workspaces, "workspaces", 3, "number of workspaces")
	f.IntVar(&o.streams, "streams", 30, "number of data streams, in total across workspaces")
	f.IntVar(&o.jobsPerStream, "jobs-per-stream", 20, "average jobs of history per stream")
	f.IntVar(&o.tokens, "tokens", 1, "number of user tokens; the first sees every workspace, the others overlapping subsets")
	f.IntVar(&o.platformLimit, "platform-limit", 60, "platform calls per minute per token")
	f.IntVar(&o.queryLimit, "query-limit", 200, "Query API calls per minute per token")
	f.IntVar(&o.dailyQuota, "daily-quota", 20000, "calls per UTC day per token, platform and query together")
	f.StringVar(&o.faults, "faults", "", "fault injection, KIND=RATE,… with kinds "+strings.Join(sim.FaultKinds, ", ")+
		" and the hostile listings "+strings.Join(sim.HostileKinds, ", ")+
		`; "all=RATE" sets every transport kind but queryerror; also slowdelay=DURATION, seed=N, onlyreads=true, `+
		`path=PATTERN (only requests whose path matches, e.g. /v1/workspaces/*/data-streams), hugepagebytes=N`)

	f.StringVar(&o.statsOrder, "stats-order", "asc", "order of the stats listing: asc (oldest first) or desc")
	f.IntVar(&o.maxPageSize, "max-page-size", 1000, "silent cap on the stats pageSize")
	f.StringVar(&o.lastRunStatus, "last-run-status", "bool", "type of a stream's lastRunStatus: bool or string")
	f.BoolVar(&o.rerunNewIDs, "rerun-new-ids", true, "a rerun creates new stat ids (false: resets the stats in place)")
	f.StringVar(&o.errorBody, "error-body", "json", `error body shape: json ({"errors":["…"]}) or text`)
	f.BoolVar(&o.queryBatch, "query-batch", true, "serve POST /v1/query-batch")
	f.BoolVar(&o.countFailedCalls, "count-failed-calls", false, "4xx/5xx answers count against the rate limits")
	f.IntVar(&o.bulkStatusMaxIDs, "bulk-status-max-ids", 0, "most ids per bulk status call (0: no cap)")
	f.BoolVar(&o.lastNIncludesToday, "last-n-days-include-today", false, "Query API LAST_N_DAYS ranges end today instead of yesterday")
	f.IntVar(&o.queryMaxRows, "query-max-rows", 600000, "rows above which a query answers 200 with errors")
	f.BoolVar(&o.viewerTokens, "viewer-tokens", false, "tokens 2..N are lower-role users who get nulls for some fields")
}

func newSimCommand(g *globalOptions) *cobra.Command {
	var opts simOptions
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve a simulated Datorama API on loopback",
		Long: `Serve a faithful simulation of the Datorama platform and Query API on a loopback
address, with a generated account, the real rate limits and optional fault injection.

On start it prints shell-sourceable lines:

  DATORAMA_BASE_URL=http://127.0.0.1:PORT
  DATORAMA_TOKEN=…          (and DATORAMA_TOKEN_2=… for more tokens)

then serves until interrupted. Its clock is real time plus an offset:
POST $DATORAMA_BASE_URL/_sim/advance?by=90m makes 90 minutes pass for jobs and
scheduled runs. GET /_sim/truth is the complete state, GET /_sim/calls the call
counters, POST /_sim/faults (body KIND=RATE,…) changes the faults.

Fault kinds: ` + strings.Join(sim.FaultKinds, ", ") + `.
Hostile listings (200 answers a client must refuse, never set by all=RATE):
  dupid       the second record of a listing carries the first one's id
              (system name for dimensions and measurements)
  sameid      every record of a listing carries the first one's id
  negid       the last record of a listing carries its id negated
  nullstatus  the first job of a stats page has "status": null
  hugepage    a stats page padded to hugepagebytes (default 240 MiB)
path=PATTERN keeps the faults to matching request paths, e.g.
  --faults 'dupid=1,path=/v1/workspaces/*/data-streams'

Exit codes: 0 ok (stopped by SIGINT/SIGTERM), 1 failure, 2 usage.`,
		Example: `  eval "$(drextract sim --seed 1 --streams 200 | sed 's/^/export /')" &
  curl -H "Authorization: $DATORAMA_TOKEN" "$DATORAMA_BASE_URL/v1/workspaces"`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runSim(cmd.Context(), opts, g, args) },
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// runSim serves the simulator until ctx is cancelled, which is its normal end.
func runSim(ctx context.Context, opts simOptions, g *globalOptions, _ []string) error {
	faults, err := sim.ParseFaults(opts.faults)
	if err != nil {
		return usage(err)
	}
	if err := checkLoopback(opts.addr); err != nil {
		return usage(err)
	}
	so := sim.Options{
		Seed: opts.seed, Workspaces: opts.workspaces, Streams: opts.streams, JobsPerStream: opts.jobsPerStream,
		Tokens: opts.tokens, PlatformLimit: opts.platformLimit, QueryLimit: opts.queryLimit, DailyQuota: opts.dailyQuota,
		Clock: &clock.Offset{}, StatsOrder: opts.statsOrder, MaxPageSize: opts.maxPageSize,
		LastRunStatus: opts.lastRunStatus, RerunNewIDs: sim.Bool(opts.rerunNewIDs), ErrorBody: opts.errorBody,
		QueryBatch: sim.Bool(opts.queryBatch), CountFailedCalls: opts.countFailedCalls,
		BulkStatusMaxIDs: opts.bulkStatusMaxIDs, LastNDaysIncludesToday: opts.lastNIncludesToday,
		QueryMaxRows: opts.queryMaxRows, ViewerTokens: opts.viewerTokens, Faults: faults,
		Logger: simLogger(g),
	}
	for _, v := range []struct {
		flag string
		n    int
	}{{"--workspaces", opts.workspaces}, {"--streams", opts.streams}, {"--tokens", opts.tokens}} {
		if v.n < 1 {
			return usage(fmt.Errorf("%s %d: want at least 1", v.flag, v.n))
		}
	}
	if err := so.Validate(); err != nil {
		return usage(err)
	}
	s := sim.New(so)
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", opts.addr, err)
	}
	fmt.Fprintf(g.stdout, "DATORAMA_BASE_URL=http://%s\n", ln.Addr())
	for i, tok := range s.Tokens() {
		if i == 0 {
			fmt.Fprintf(g.stdout, "DATORAMA_TOKEN=%s\n", tok)
		} else {
			fmt.Fprintf(g.stdout, "DATORAMA_TOKEN_%d=%s\n", i+1, tok)
		}
	}
	so.Logger.Info("simulator serving", "component", "cli", "addr", ln.Addr().String(), "seed", opts.seed,
		"workspaces", opts.workspaces, "streams", opts.streams, "tokens", opts.tokens, "faults", faults.String())
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving the simulator: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the simulator: %w", err)
	}
	return nil
}

// checkLoopback refuses addresses other machines could reach: the simulator has no
// authentication worth the name.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want HOST:PORT, e.g. 127.0.0.1:0", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: the simulator binds loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

func simLogger(g *globalOptions) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}
