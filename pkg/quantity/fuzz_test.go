package quantity

import (
	"errors"
	"testing"
)

// FuzzParseMilliCPU checks CPU quantities: an accepted one is not negative,
// a refused one wraps ErrInvalid, and it agrees with ParseBytes, which reads
// the same grammar a thousand times coarser: both round up, so
// ceil(1000v) <= 1000·ceil(v) < ceil(1000v) + 1000.
func FuzzParseMilliCPU(f *testing.F) {
	for _, s := range []string{"500m", "100m", "0.5", "1", "1500u", "1n", "2k", "1Ki", "1e3", "1e-3", "x", "-100m", "", " 1", "+1", "1e+3", "9e15"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMilliCPU(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || m != 0 {
				t.Fatalf("ParseMilliCPU(%q) = %d, %v; want 0 and an error wrapping ErrInvalid", s, m, err)
			}
			return
		}
		if m < 0 {
			t.Fatalf("ParseMilliCPU(%q) = %d, negative", s, m)
		}
		b, err := ParseBytes(s)
		if err != nil {
			t.Fatalf("ParseMilliCPU(%q) = %d, but ParseBytes refuses it: %v", s, m, err)
		}
		if m > 1000*b || 1000*b >= m+1000 {
			t.Fatalf("ParseMilliCPU(%q) = %d and ParseBytes = %d disagree", s, m, b)
		}
	})
}
