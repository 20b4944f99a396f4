// Package fingerprint names an API token without revealing it, in logs, tables and
// status pages, and recognises such a name: wherever a value that should be a
// fingerprint is not one, it might be the token itself and must not be shown. It knows
// nothing else.
package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
)

// None is the fingerprint of the empty token.
const None = "tok_none"

// Invalid stands in for a value that should have been a fingerprint and is not one.
const Invalid = "tok_invalid"

// Of is "tok_" and the first 8 hex digits of the token's SHA-256. The same token always
// gives the same name.
func Of(token string) string {
	if token == "" {
		return None
	}
	sum := sha256.Sum256([]byte(token))
	return "tok_" + hex.EncodeToString(sum[:4])
}

var form = regexp.MustCompile(`^tok_([0-9a-f]{8}|none)$`)

// Valid reports whether s has the form Of gives.
func Valid(s string) bool { return form.MatchString(s) }

// Safe is s when it is a fingerprint and Invalid otherwise: what a caller shows or stores
// where a fingerprint belongs, so that a token passed by mistake never leaves.
func Safe(s string) string {
	if Valid(s) {
		return s
	}
	return Invalid
}
