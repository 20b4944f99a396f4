package sim

import (
	"bytes"
	"net/http"
	"testing"
)

// TokenValues replaces the secrets of the first tokens and nothing else: the account is
// byte-identical, the given secrets authenticate as their token numbers, and an empty
// or repeated value keeps the generated secret.
func TestTokenValues(t *testing.T) {
	const canary = "dato-api-SECRET/CANARY+e2e="
	plain := newHarness(t, Options{Tokens: 3, Workspaces: 3})
	for _, tt := range []struct {
		name   string
		values []string
		want   []string // "" means the generated secret of that token
	}{
		{"first", []string{canary}, []string{canary, "", ""}},
		{"second only", []string{"", canary}, []string{"", canary, ""}},
		{"repeated", []string{canary, canary}, []string{canary, "", ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{Tokens: 3, Workspaces: 3, TokenValues: tt.values})
			got := h.sim.Tokens()
			if len(got) != len(tt.want) {
				t.Fatalf("%d tokens, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if w == "" {
					w = plain.sim.Tokens()[i]
				}
				if got[i] != w {
					t.Errorf("token %d = %q, want %q", i+1, got[i], w)
				}
				h.ok(h.do("GET", "/v1/workspaces", nil, withToken(got[i])), http.StatusOK, nil)
			}
			var a, b bytes.Buffer
			if err := plain.sim.WriteTruth(&a); err != nil {
				t.Fatal(err)
			}
			if err := h.sim.WriteTruth(&b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Error("setting TokenValues changed the account")
			}
		})
	}
	// More values than Tokens: the count grows to hold them.
	h := newHarness(t, Options{TokenValues: []string{"", canary}})
	if got := h.sim.Tokens(); len(got) != 2 || got[1] != canary {
		t.Errorf("tokens %q, want 2 ending in the canary", got)
	}
}
