package main

import (
	"fmt"
	"testing"
	"time"
)

// The login throttle's settings: defaults, values, refusals.
func TestParseConfigLoginThrottle(t *testing.T) {
	tests := []struct {
		env     map[string]string
		max     int
		window  time.Duration
		trusted string
		wantErr bool
	}{
		{env: nil, max: 10, window: time.Minute, trusted: "[]"},
		{env: map[string]string{"AUTH_FAILURES_MAX": "0"}, max: 0, window: time.Minute, trusted: "[]"},
		{env: map[string]string{"AUTH_FAILURES_MAX": "3", "AUTH_FAILURE_WINDOW": "5m", "AUTH_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"},
			max: 3, window: 5 * time.Minute, trusted: "[127.0.0.1/32 10.0.0.0/8]"},
		{env: map[string]string{"AUTH_FAILURES_MAX": "-1"}, wantErr: true},
		{env: map[string]string{"AUTH_FAILURES_MAX": "many"}, wantErr: true},
		{env: map[string]string{"AUTH_FAILURE_WINDOW": "0"}, wantErr: true},
		{env: map[string]string{"AUTH_TRUSTED_PROXIES": "proxy.local"}, wantErr: true},
	}
	for _, tt := range tests {
		c, err := parseConfig(nil, env(tt.env))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseConfig(%v) error %v, want error %v", tt.env, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			continue
		}
		if c.AuthFailuresMax != tt.max || c.AuthFailureWindow != tt.window || fmt.Sprint(c.AuthTrustedProxies) != tt.trusted {
			t.Errorf("parseConfig(%v) = %d %v %v, want %d %v %s", tt.env, c.AuthFailuresMax, c.AuthFailureWindow, c.AuthTrustedProxies, tt.max, tt.window, tt.trusted)
		}
	}
}
