package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"time"
)

// Fault kinds, the names ParseFaults and `drextract sim --faults` accept.
const (
	FaultHTTP500    = "http500"    // 500 with an error body, before the call has any effect
	FaultHTTP502    = "http502"    // 502, likewise
	FaultHTTP503    = "http503"    // 503, likewise
	FaultSlow       = "slow"       // the answer is held for SlowDelay of real time, then sent
	FaultReset      = "reset"      // the connection is reset after part of the body
	FaultTruncated  = "truncated"  // 200 with the JSON body cut in half (Content-Length matches)
	FaultMalformed  = "malformed"  // 200 with a body that is not valid JSON
	FaultHTML       = "html"       // 200 with an HTML error page, before the call has any effect
	FaultStorm429   = "storm429"   // the token's minute bucket is suddenly exhausted: 429s until it resets
	FaultRepeat     = "repeat"     // a stats page (pageNumber > 1) repeats the previous page's items
	FaultEmptyPage  = "emptypage"  // a stats page that has items, with more after it, answers []
	FaultQueryError = "queryerror" // a Query API call answers 200 with a non-empty errors property

	// Hostile listings: a 200 answer that is well-formed JSON but impossible. They hit
	// only the listings they can spoil (see spoilListing) and never the truth.
	FaultDupID      = "dupid"      // the second record of a listing carries the first one's id (system name for dimensions and measurements)
	FaultSameID     = "sameid"     // every record of a listing carries the first one's id (system name)
	FaultNegID      = "negid"      // the last record of a listing carries its id negated
	FaultNullStatus = "nullstatus" // the first job of a stats page has "status": null
	FaultHugePage   = "hugepage"   // the jobs of a stats page carry processLogs that make the page HugePageBytes long
)

// FaultKinds lists the transport and paging kinds in the order a request draws them.
// "all" sets every one of them except queryerror, which is a Query API answer rather
// than a transport failure.
var FaultKinds = []string{
	FaultHTTP500, FaultHTTP502, FaultHTTP503, FaultSlow, FaultReset, FaultTruncated,
	FaultMalformed, FaultHTML, FaultStorm429, FaultRepeat, FaultEmptyPage, FaultQueryError,
}

// HostileKinds lists the hostile-listing kinds, drawn after FaultKinds. "all" leaves
// them out: a client must refuse such an answer, not get past it by retrying, so they
// are switched on by name.
var HostileKinds = []string{FaultDupID, FaultSameID, FaultNegID, FaultNullStatus, FaultHugePage}

// allKinds is FaultKinds then HostileKinds: the draw order.
var allKinds = append(append([]string(nil), FaultKinds...), HostileKinds...)

// Faults are the injected failures: a rate in [0,1] per kind. Each API request draws one
// number from the faults' own seeded generator and gets at most one fault; a kind that
// does not apply to the request (repeat on a workspace list, say) means no fault, so the
// effective rate of the narrow kinds is their rate among the requests they can hit. The
// same requests in the same order meet the same faults. Faults never touch /_sim/.
type Faults struct {
	Rates map[string]float64
	// SlowDelay is how long a slow answer is held, in real time (default 2s). The wait
	// ends early when the client goes away.
	SlowDelay time.Duration
	// Seed seeds the fault generator; 0 means Options.Seed.
	Seed int64
	// OnlyReads keeps faults off calls that change state (create, update, delete,
	// process, rerun), so a test can fault a crawl without making its actions ambiguous.
	OnlyReads bool
	// Path, when set, is a path.Match pattern ("/v1/workspaces/*/data-streams"): only
	// API requests whose path matches it draw faults. A hostile listing can so hit one
	// workspace's streams and leave the rest of the account clean.
	Path string
	// HugePageBytes is how long a hugepage answer is (default 240 MiB, the page that
	// once pushed a crawl to 1.4 GB).
	HugePageBytes int
}

// Any reports whether any kind has a positive rate.
func (f Faults) Any() bool {
	for _, r := range f.Rates {
		if r > 0 {
			return true
		}
	}
	return false
}

// Validate reports unknown kinds and rates outside [0,1].
func (f Faults) Validate() error {
	var errs []error
	for k, r := range f.Rates {
		if !isFaultKind(k) {
			errs = append(errs, fmt.Errorf("fault kind %q: want one of %s", k, strings.Join(allKinds, ", ")))
		}
		if r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("fault %s rate %v: want a number from 0 to 1", k, r))
		}
	}
	if f.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("slow delay %v: must not be negative", f.SlowDelay))
	}
	if _, err := path.Match(f.Path, "/"); err != nil {
		errs = append(errs, fmt.Errorf("fault path %q: %v", f.Path, err))
	}
	if f.HugePageBytes < 0 {
		errs = append(errs, fmt.Errorf("huge page bytes %d: must not be negative", f.HugePageBytes))
	}
	return errors.Join(errs...)
}

// String is the ParseFaults form of f, with kinds in FaultKinds order.
func (f Faults) String() string {
	var parts []string
	for _, k := range allKinds {
		if r := f.Rates[k]; r > 0 {
			parts = append(parts, k+"="+strconv.FormatFloat(r, 'g', -1, 64))
		}
	}
	if f.SlowDelay > 0 && f.SlowDelay != defaultSlowDelay {
		parts = append(parts, "slowdelay="+f.SlowDelay.String())
	}
	if f.Seed != 0 {
		parts = append(parts, "seed="+strconv.FormatInt(f.Seed, 10))
	}
	if f.OnlyReads {
		parts = append(parts, "onlyreads=true")
	}
	if f.Path != "" {
		parts = append(parts, "path="+f.Path)
	}
	if f.HugePageBytes > 0 && f.HugePageBytes != defaultHugePageBytes {
		parts = append(parts, "hugepagebytes="+strconv.Itoa(f.HugePageBytes))
	}
	return strings.Join(parts, ",")
}

func (f Faults) withDefaults() Faults {
	if f.SlowDelay <= 0 {
		f.SlowDelay = defaultSlowDelay
	}
	if f.HugePageBytes <= 0 {
		f.HugePageBytes = defaultHugePageBytes
	}
	rates := make(map[string]float64, len(f.Rates))
	for k, r := range f.Rates {
		rates[k] = r
	}
	f.Rates = rates
	return f
}

func isFaultKind(k string) bool {
	for _, x := range allKinds {
		if x == k {
			return true
		}
	}
	return false
}

// ParseFaults parses "KIND=RATE,…", e.g. "http500=0.02,all=0.01". "all=RATE" sets every
// kind of FaultKinds but queryerror; a kind named explicitly keeps its own rate whatever
// the order. Besides kinds it accepts slowdelay=DURATION, seed=N, onlyreads=BOOL,
// path=PATTERN (e.g. path=/v1/workspaces/*/data-streams) and hugepagebytes=N. An empty
// string means no faults.
func ParseFaults(s string) (Faults, error) {
	f := Faults{Rates: map[string]float64{}}
	all := -1.0
	explicit := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if !ok || name == "" || val == "" {
			return Faults{}, fmt.Errorf("faults: %q: want KIND=RATE", part)
		}
		switch name {
		case "slowdelay", "slow_delay", "slow-delay":
			d, err := time.ParseDuration(val)
			if err != nil || d < 0 {
				return Faults{}, fmt.Errorf("faults: slowdelay %q: want a duration such as 2s", val)
			}
			f.SlowDelay = d
			continue
		case "seed":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return Faults{}, fmt.Errorf("faults: seed %q: want an integer", val)
			}
			f.Seed = n
			continue
		case "path":
			if _, err := path.Match(val, "/"); err != nil || !strings.HasPrefix(val, "/") {
				return Faults{}, fmt.Errorf("faults: path %q: want a path pattern such as /v1/workspaces/*/data-streams", val)
			}
			f.Path = val
			continue
		case "hugepagebytes", "huge_page_bytes", "huge-page-bytes":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return Faults{}, fmt.Errorf("faults: hugepagebytes %q: want a positive number of bytes", val)
			}
			f.HugePageBytes = n
			continue
		case "onlyreads", "only_reads", "only-reads":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return Faults{}, fmt.Errorf("faults: onlyreads %q: want true or false", val)
			}
			f.OnlyReads = b
			continue
		}
		rate, err := strconv.ParseFloat(val, 64)
		if err != nil || rate < 0 || rate > 1 {
			return Faults{}, fmt.Errorf("faults: %s rate %q: want a number from 0 to 1", name, val)
		}
		if name == "all" {
			all = rate
			continue
		}
		if !isFaultKind(name) {
			return Faults{}, fmt.Errorf("faults: unknown kind %q: want all or one of %s", name, strings.Join(allKinds, ", "))
		}
		f.Rates[name] = rate
		explicit[name] = true
	}
	if all >= 0 {
		for _, k := range FaultKinds {
			if k != FaultQueryError && !explicit[k] {
				f.Rates[k] = all
			}
		}
	}
	return f, nil
}

// faultState is the live fault configuration and its generator. Guarded by Sim.mu.
type faultState struct {
	f   Faults
	rng *rand.Rand
}

func newFaultState(f Faults, simSeed int64) faultState {
	seed := f.Seed
	if seed == 0 {
		seed = simSeed
	}
	return faultState{f: f, rng: rand.New(rand.NewPCG(uint64(seed), 0xfa017))}
}

// draw picks at most one fault kind for a request to urlPath; "" means none. The kinds
// are tried in FaultKinds then HostileKinds order against one uniform draw, so rates add
// up. A request outside Path draws nothing.
func (fs *faultState) draw(urlPath string) string {
	if !fs.f.Any() {
		return ""
	}
	if fs.f.Path != "" {
		if ok, _ := path.Match(fs.f.Path, urlPath); !ok {
			return ""
		}
	}
	u := fs.rng.Float64()
	cum := 0.0
	for _, k := range allKinds {
		cum += fs.f.Rates[k]
		if u < cum {
			return k
		}
	}
	return ""
}
