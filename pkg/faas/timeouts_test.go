package faas

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "15s", want: 15 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "15", want: 15 * time.Second},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "9223372036", want: 9223372036 * time.Second}, // the largest whole number of seconds
		{in: "9223372037", wantErr: true},                  // would wrap around
		{in: "-1", wantErr: true},
		{in: "-1s", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: "", wantErr: true},
		{in: " 5", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTimeout(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTimeoutsFromEnv(t *testing.T) {
	tests := []struct {
		env     map[string]string
		want    Timeouts
		wantErr bool
	}{
		{nil, Timeouts{}, false},
		{map[string]string{"exec_timeout": "15s", "read_timeout": "5", "write_timeout": "1m"}, Timeouts{Read: 5 * time.Second, Write: time.Minute, Exec: 15 * time.Second}, false},
		{map[string]string{"exec_timeout": ""}, Timeouts{}, false},
		{map[string]string{"exec_timeout": "soon"}, Timeouts{}, true},
		{map[string]string{"read_timeout": "-5"}, Timeouts{}, true},
	}
	for _, tt := range tests {
		got, err := TimeoutsFromEnv(tt.env)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("TimeoutsFromEnv(%v) = %+v, %v; want %+v, err=%v", tt.env, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestTimeoutsFromEnvWrapsParseError checks that the error names the
// variable and still carries ParseTimeout's, for callers that unwrap it.
func TestTimeoutsFromEnvWrapsParseError(t *testing.T) {
	_, parseErr := ParseTimeout("soon")
	_, err := TimeoutsFromEnv(map[string]string{EnvExecTimeout: "soon"})
	if inner := errors.Unwrap(err); inner == nil || inner.Error() != parseErr.Error() {
		t.Fatalf("TimeoutsFromEnv error = %v, want one wrapping %v", err, parseErr)
	}
	if want := "envVars " + EnvExecTimeout + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("TimeoutsFromEnv error = %q, want it to start with %q", err, want)
	}
}

// FuzzParseTimeout checks that an accepted timeout is never negative, that
// a plain number is exactly that many seconds (no overflow), and that the
// duration written back parses to itself.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"15s", "15", "0", "1m30s", "-1", "-1s", "1.5h", "9223372036", "9223372037", "99999999999999999999",
		"2562047h", "2562048h", "1e3", "", " 5", "5 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		if err != nil {
			if d != 0 || err.Error() == "" {
				t.Fatalf("ParseTimeout(%q) = %v, %v", s, d, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseTimeout(%q) = %v, negative", s, d)
		}
		if n, err := strconv.Atoi(s); err == nil && d/time.Second != time.Duration(n) {
			t.Fatalf("ParseTimeout(%q) = %v, want %d seconds", s, d, n)
		}
		if again, err := ParseTimeout(d.String()); err != nil || again != d {
			t.Fatalf("ParseTimeout(%q) = %v; written back as %q it parses to %v, %v", s, d, d.String(), again, err)
		}
	})
}
