package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
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
)

// FaultKinds lists every kind in the order a request draws them. "all" sets every kind
// except queryerror, which is a Query API answer rather than a transport failure.
var FaultKinds = []string{
	FaultHTTP500, FaultHTTP502, FaultHTTP503, FaultSlow, FaultReset, FaultTruncated,
	FaultMalformed, FaultHTML, FaultStorm429, FaultRepeat, FaultEmptyPage, FaultQueryError,
}

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
			errs = append(errs, fmt.Errorf("fault kind %q: want one of %s", k, strings.Join(FaultKinds, ", ")))
		}
		if r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("fault %s rate %v: want a number from 0 to 1", k, r))
		}
	}
	if f.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("slow delay %v: must not be negative", f.SlowDelay))
	}
	return errors.Join(errs...)
}

// String is the ParseFaults form of f, with kinds in FaultKinds order.
func (f Faults) String() string {
	var parts []string
	for _, k := range FaultKinds {
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
	return strings.Join(parts, ",")
}

func (f Faults) withDefaults() Faults {
	if f.SlowDelay <= 0 {
		f.SlowDelay = defaultSlowDelay
	}
	rates := make(map[string]float64, len(f.Rates))
	for k, r := range f.Rates {
		rates[k] = r
	}
	f.Rates = rates
	return f
}

func isFaultKind(k string) bool {
	for _, x := range FaultKinds {
		if x == k {
			return true
		}
	}
	return false
}

// ParseFaults parses "KIND=RATE,…", e.g. "http500=0.02,all=0.01". "all=RATE" sets every
// kind but queryerror; a kind named explicitly keeps its own rate whatever the order.
// Besides kinds it accepts slowdelay=DURATION, seed=N and onlyreads=BOOL. An empty string
// means no faults.
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
			return Faults{}, fmt.Errorf("faults: unknown kind %q: want all or one of %s", name, strings.Join(FaultKinds, ", "))
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

// draw picks at most one fault kind for a request; "" means none. The kinds are tried
// in FaultKinds order against one uniform draw, so rates add up.
func (fs *faultState) draw() string {
	if !fs.f.Any() {
		return ""
	}
	u := fs.rng.Float64()
	cum := 0.0
	for _, k := range FaultKinds {
		cum += fs.f.Rates[k]
		if u < cum {
			return k
		}
	}
	return ""
}
