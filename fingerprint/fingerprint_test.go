package fingerprint

import "testing"

func TestFingerprint(t *testing.T) {
	const token = "dato-api-31i9a14b-0000-4000-8000-000000000000"
	fp := Of(token)
	for _, tc := range []struct {
		in   string
		safe string
	}{
		{fp, fp}, {Of(""), None}, {None, None},
		{token, Invalid}, {"tok_1234567", Invalid}, {"tok_123456789", Invalid}, {"tok_ABCDEF12", Invalid}, {"", Invalid},
	} {
		if got := Safe(tc.in); got != tc.safe {
			t.Errorf("Safe(%q) = %q, want %q", tc.in, got, tc.safe)
		}
	}
	if fp != Of(token) || len(fp) != len("tok_")+8 || fp == Of(token+"x") {
		t.Errorf("Of is not a stable 8-hex-digit name: %q", fp)
	}
}
