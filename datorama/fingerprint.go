package datorama

import "github.com/drextract/drextract/fingerprint"

// Fingerprint names a token in logs, tables and status pages without revealing it (see
// package fingerprint): "tok_" and the first 8 hex digits of its SHA-256.
func Fingerprint(token string) string { return fingerprint.Of(token) }
