package faas

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// DefaultTimeout matches faasd's service_timeout, so functions written for
// it behave the same here.
const DefaultTimeout = 60 * time.Second

// Names of the envVars in which OpenFaaS functions declare their timeouts;
// the watchdogs read the same variables.
const (
	EnvReadTimeout  = "read_timeout"
	EnvWriteTimeout = "write_timeout"
	EnvExecTimeout  = "exec_timeout"
)

// Timeouts bound one call to a function. Zero fields mean the proxy's defaults.
type Timeouts struct {
	// Read bounds reading the request from the client.
	Read time.Duration
	// Write bounds writing the response to the client.
	Write time.Duration
	// Exec bounds the function's work: no complete answer by then is a 504.
	Exec time.Duration
}

// ParseTimeout parses a timeout as the OpenFaaS watchdogs do: a Go duration
// ("15s", "1m30s") or a plain number of seconds ("15"). Zero means "not set".
func ParseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("timeout %q is negative", v)
		}
		// Beyond this the multiplication wraps around to a negative
		// duration; time.ParseDuration refuses the same range.
		if n > int(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("timeout %q is too large", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("timeout %q: want a duration such as 30s or a number of seconds", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("timeout %q is negative", v)
	}
	return d, nil
}

// TimeoutsFromEnv reads a function's timeouts from its envVars. Absent
// variables stay zero, meaning the proxy's defaults.
func TimeoutsFromEnv(env map[string]string) (Timeouts, error) {
	var t Timeouts
	for name, dst := range map[string]*time.Duration{
		EnvReadTimeout:  &t.Read,
		EnvWriteTimeout: &t.Write,
		EnvExecTimeout:  &t.Exec,
	} {
		v, ok := env[name]
		if !ok || v == "" {
			continue
		}
		d, err := ParseTimeout(v)
		if err != nil {
			return Timeouts{}, fmt.Errorf("envVars %s: %w", name, err)
		}
		*dst = d
	}
	return t, nil
}
