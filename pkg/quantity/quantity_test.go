package quantity

import (
	"errors"
	"testing"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"128Mi", 128 << 20, true},
		{"5Mi", 5 << 20, true},
		{"1Gi", 1 << 30, true},
		{"64M", 64e6, true},
		{"1k", 1000, true},
		{"1024", 1024, true},
		{"1.5Gi", 3 << 29, true},
		{"1e3", 1000, true},
		{"100m", 1, true}, // 0.1 byte rounds up
		{"", 0, false},
		{"-1Mi", 0, false},
		{"12Xi", 0, false},
		{"Mi", 0, false},
		{" 1Mi", 0, false},
		{"abc", 0, false},
		{"99999999999Ei", 0, false},
		{"1e1000000", 0, false}, // would cost big.Rat ~24 ms to expand
		{"1e+3", 1000, true},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseBytes(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseBytes(%q) error %v does not wrap ErrInvalid", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseMilliCPU(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"500m", 500, true},
		{"100m", 100, true},
		{"0.5", 500, true},
		{"1", 1000, true},
		{"2", 2000, true},
		{"1500u", 2, true},
		{"x", 0, false},
		{"-100m", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseMilliCPU(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMilliCPU(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"128Mi", "500m", "0.5", "1e3", "", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseBytes(s); err == nil && v < 0 {
			t.Fatalf("ParseBytes(%q) = %d, negative", s, v)
		}
	})
}
