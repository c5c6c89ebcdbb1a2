package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// FuzzDefaultTimeouts checks DEFAULT_TIMEOUTS parsing: an accepted value
// sets all three timeouts positive, a plain number is that many seconds, and
// the timeouts written back in the key=value form parse to the same.
func FuzzDefaultTimeouts(f *testing.F) {
	for _, s := range []string{"60s", "60", "read=5s,write=6s,exec=7", "read=5s", "exec=1m", " read=1s , exec=2s", "0", "-5", "-5s",
		"read=0", "read=-1", "idle=5s", "read=5s,", "=", "", "9223372037", "2562048h", "read=5s,read=6s", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var c config
		if err := c.setTimeouts(v); err != nil {
			if err.Error() == "" {
				t.Fatalf("setTimeouts(%q): empty error", v)
			}
			return
		}
		for _, d := range []time.Duration{c.ReadTimeout, c.WriteTimeout, c.ExecTimeout} {
			if d <= 0 {
				t.Fatalf("setTimeouts(%q) accepted: read=%v write=%v exec=%v, want all positive", v, c.ReadTimeout, c.WriteTimeout, c.ExecTimeout)
			}
		}
		if n, err := strconv.Atoi(v); err == nil && c.ExecTimeout != time.Duration(n)*time.Second {
			t.Fatalf("setTimeouts(%q): exec=%v, want %d seconds", v, c.ExecTimeout, n)
		}
		back := fmt.Sprintf("read=%s,write=%s,exec=%s", c.ReadTimeout, c.WriteTimeout, c.ExecTimeout)
		var again config
		if err := again.setTimeouts(back); err != nil || again.ReadTimeout != c.ReadTimeout ||
			again.WriteTimeout != c.WriteTimeout || again.ExecTimeout != c.ExecTimeout {
			t.Fatalf("setTimeouts(%q) = %v/%v/%v; written back as %q: %v/%v/%v, %v", v,
				c.ReadTimeout, c.WriteTimeout, c.ExecTimeout, back, again.ReadTimeout, again.WriteTimeout, again.ExecTimeout, err)
		}
	})
}

// FuzzDurationSetting checks the settings that take one duration
// (READY_WAIT, RESYNC_INTERVAL): an accepted value is positive, so a ticker
// built from it cannot panic.
func FuzzDurationSetting(f *testing.F) {
	for _, s := range []string{"10s", "30", "0", "-1", "-1s", "0s", "1ns", "9223372037", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if d, err := parseDuration(v); err == nil && d <= 0 {
			t.Fatalf("parseDuration(%q) = %v, accepted", v, d)
		}
	})
}
