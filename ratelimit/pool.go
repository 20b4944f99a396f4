package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/drextract/drextract/datorama"
)

// Pool spreads calls over several tokens, each with its own Budget; it implements
// datorama.Gate. A token sees only its user's workspaces, so a call for a workspace
// goes to a token known to see it (see SetVisibility), the one with the most
// left this window; its permit carries that token. A Pool is safe for concurrent use.
//
// Routing, in order:
//   - WithToken(ctx, fingerprint) forces that token;
//   - a call concerning no workspace (Call.WorkspaceID 0) may go with any token;
//   - a call for a workspace goes with the tokens known to see it; if none is, with the
//     tokens whose visibility was not learned yet; if every token was learned and none
//     sees it, with the first token. List an account-wide (admin) token first: it is
//     the one that may see a workspace created since it was learned.
type Pool struct {
	budgets []*Budget
	cfg     Config
	note    *notifier

	mu      sync.RWMutex
	visible map[string]map[int64]bool // fingerprint → workspaces it sees; absent: not learned
}

var _ datorama.Gate = (*Pool)(nil)

// NewPool returns a pool of tokens, in the order given; empty and repeated tokens are
// dropped. All budgets share cfg (and so its StateDir: each token has its own file).
func NewPool(tokens []string, cfg Config) *Pool {
	cfg = cfg.withDefaults()
	cfg.restoreAPIClock(cfg.StateDir)
	p := &Pool{cfg: cfg, note: &notifier{}, visible: map[string]map[int64]bool{}}
	seen := map[string]bool{}
	for _, t := range tokens {
		fp := datorama.Fingerprint(t)
		if t == "" || seen[fp] {
			continue
		}
		seen[fp] = true
		p.budgets = append(p.budgets, newBudget(fp, t, cfg, p.note))
	}
	if len(p.budgets) > 0 {
		p.note = p.budgets[0].note // with a StateDir, the directory's notifier
	}
	return p
}

// Fingerprints names the pool's tokens, in order.
func (p *Pool) Fingerprints() []string {
	fps := make([]string, len(p.budgets))
	for i, b := range p.budgets {
		fps[i] = b.fp
	}
	return fps
}

// Acquire waits until a token may send the call and returns a permit carrying that
// token; see Pool for how the token is chosen, and Budget.Acquire for the errors.
func (p *Pool) Acquire(ctx context.Context, c datorama.Call) (datorama.Permit, error) {
	cands, err := p.candidates(ctx, c)
	if err != nil {
		return nil, err
	}
	perm, err := acquire(ctx, p.cfg.Clock, p.note, cands, c, PriorityFrom(ctx), p.cfg.Safety.Poll)
	if err != nil {
		return nil, err
	}
	return perm, nil
}

func (p *Pool) candidates(ctx context.Context, c datorama.Call) ([]*Budget, error) {
	if len(p.budgets) == 0 {
		return nil, fmt.Errorf("rate budget: the token pool is empty")
	}
	if fp := TokenFrom(ctx); fp != "" {
		for _, b := range p.budgets {
			if b.fp == fp {
				return []*Budget{b}, nil
			}
		}
		return nil, fmt.Errorf("rate budget: no token %s in the pool", fp)
	}
	if c.WorkspaceID == 0 {
		return p.budgets, nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	var seeing, unlearned []*Budget
	for _, b := range p.budgets {
		vis, learned := p.visible[b.fp]
		switch {
		case !learned:
			unlearned = append(unlearned, b)
		case vis[c.WorkspaceID]:
			seeing = append(seeing, b)
		}
	}
	switch {
	case len(seeing) > 0:
		return seeing, nil
	case len(unlearned) > 0:
		return unlearned, nil
	}
	return p.budgets[:1], nil
}

// SetVisibility records which workspaces the token with this fingerprint sees,
// replacing what was known.
func (p *Pool) SetVisibility(fingerprint string, workspaceIDs []int64) error {
	if !slices.Contains(p.Fingerprints(), fingerprint) {
		return fmt.Errorf("rate budget: no token %s in the pool", fingerprint)
	}
	vis := make(map[int64]bool, len(workspaceIDs))
	for _, id := range workspaceIDs {
		vis[id] = true
	}
	p.mu.Lock()
	p.visible[fingerprint] = vis
	p.mu.Unlock()
	return nil
}

// Visible returns the workspaces the token is known to see, sorted, and whether its
// visibility was learned.
func (p *Pool) Visible(fingerprint string) ([]int64, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	vis, ok := p.visible[fingerprint]
	ids := make([]int64, 0, len(vis))
	for id := range vis {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, ok
}

// learn asks every token for the workspaces it sees and records them. list is called
// once per token with a context carrying WithToken, so a client whose gate is this pool
// sends the call with that token; typically it returns the ids of
// client.Workspaces.List(ctx). learn stops at the first error.
func (p *Pool) learn(ctx context.Context, list func(ctx context.Context) ([]int64, error)) error {
	for _, b := range p.budgets {
		ids, err := list(WithToken(ctx, b.fp))
		if err != nil {
			return fmt.Errorf("learning the workspaces token %s sees: %w", b.fp, err)
		}
		if err := p.SetVisibility(b.fp, ids); err != nil {
			return err
		}
	}
	return nil
}

// Status reports every token's budget, in order.
func (p *Pool) Status() []Status {
	out := make([]Status, len(p.budgets))
	for i, b := range p.budgets {
		out[i] = b.Status()
	}
	return out
}
