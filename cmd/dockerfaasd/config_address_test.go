package main

import (
	"strings"
	"testing"
)

// FUNCTION_CIDR is off by default; set, it must be an IPv4 CIDR with at
// least two usable addresses, and a bad one stops the start with a message
// that names the setting.
func TestParseConfigFunctionCIDR(t *testing.T) {
	c, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.FunctionCIDR.IsValid() || c.FunctionAddressPort != 80 {
		t.Errorf("defaults: FUNCTION_CIDR %v, FUNCTION_ADDRESS_PORT %d; want off and 80", c.FunctionCIDR, c.FunctionAddressPort)
	}
	c, err = parseConfig([]string{"--function-cidr", "127.77.0.9/29", "--function-address-port", "8081"}, env(nil))
	if err != nil || c.FunctionCIDR.String() != "127.77.0.8/29" || c.FunctionAddressPort != 8081 {
		t.Errorf("flags: %v %d %v, want 127.77.0.8/29 8081", c.FunctionCIDR, c.FunctionAddressPort, err)
	}

	rejects := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FUNCTION_CIDR": "fd00::/64"}, "want IPv4"},
		{map[string]string{"FUNCTION_CIDR": "10.77.0.0/31"}, "fewer than 2 usable addresses"},
		{map[string]string{"FUNCTION_CIDR": "10.77.0.1/32"}, "fewer than 2 usable addresses"},
		{map[string]string{"FUNCTION_CIDR": "10.77.0.0"}, "FUNCTION_CIDR"},
		{map[string]string{"FUNCTION_CIDR": "lots"}, "FUNCTION_CIDR"},
		{map[string]string{"FUNCTION_ADDRESS_PORT": "0"}, "FUNCTION_ADDRESS_PORT"},
		{map[string]string{"FUNCTION_ADDRESS_PORT": "65536"}, "FUNCTION_ADDRESS_PORT"},
		{map[string]string{"FUNCTION_ADDRESS_PORT": "http"}, "FUNCTION_ADDRESS_PORT"},
	}
	for _, r := range rejects {
		_, err := parseConfig(nil, env(r.env))
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("parseConfig(%v) = %v, want an error with %q", r.env, err, r.want)
		}
	}
}
