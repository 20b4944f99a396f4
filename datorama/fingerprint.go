package datorama

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint names a token in logs, tables and status pages without revealing it: "tok_"
// and the first 8 hex digits of its SHA-256. The same token always gives the same name.
func Fingerprint(token string) string {
	if token == "" {
		return "tok_none"
	}
	sum := sha256.Sum256([]byte(token))
	return "tok_" + hex.EncodeToString(sum[:4])
}
