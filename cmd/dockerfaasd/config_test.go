package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{"STATE_DIR": "/tmp/x"}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"port", c.Port, 8080},
		{"db", c.DBPath, filepath.Join("/tmp/x", "state.db")},
		{"instance", c.Instance, "dockerfaasd"},
		{"network prefix", c.FunctionsNetwork, "dockerfaasd"},
		{"user", c.AuthUser, "admin"},
		{"invoke auth", c.InvokeAuth, true},
		{"exec timeout", c.ExecTimeout, 60 * time.Second},
		{"resync", c.Resync, 30 * time.Second},
		{"image upload max", c.ImageUploadMax, int64(2 << 30)},
		{"pool size", c.PoolSize, 2},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	c, err := parseConfig(
		[]string{"--port", "9090", "--invoke-auth=false"},
		env(map[string]string{"GATEWAY_PORT": "7070", "DEFAULT_TIMEOUTS": "read=5s,write=6s,exec=7", "INSTANCE": "e2e-1"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9090 {
		t.Errorf("flag must win over env: port = %d", c.Port)
	}
	if c.InvokeAuth {
		t.Error("--invoke-auth=false ignored")
	}
	if c.ReadTimeout != 5*time.Second || c.WriteTimeout != 6*time.Second || c.ExecTimeout != 7*time.Second {
		t.Errorf("timeouts = %v %v %v", c.ReadTimeout, c.WriteTimeout, c.ExecTimeout)
	}
	if c.FunctionsNetwork != "e2e-1" {
		t.Errorf("network prefix defaults to INSTANCE, got %q", c.FunctionsNetwork)
	}
}

// A timeout left out of the key=value form keeps the default instead of
// becoming zero.
func TestParseConfigPartialTimeouts(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{"DEFAULT_TIMEOUTS": "read=5s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadTimeout != 5*time.Second || c.WriteTimeout != 60*time.Second || c.ExecTimeout != 60*time.Second {
		t.Errorf("timeouts = %v %v %v, want 5s 1m0s 1m0s", c.ReadTimeout, c.WriteTimeout, c.ExecTimeout)
	}
}

func TestParseConfigRejects(t *testing.T) {
	tests := []map[string]string{
		{"GATEWAY_PORT": "0"},
		{"GATEWAY_PORT": "http"},
		{"INSTANCE": "has space"},
		{"DEFAULT_TIMEOUTS": "read=fast"},
		{"DEFAULT_TIMEOUTS": "idle=5s"},
		{"INVOKE_AUTH": "maybe"},
		{"RESYNC_INTERVAL": "-1s"},
		{"RESYNC_INTERVAL": "-1"},
		{"READY_WAIT": "0"},
		{"DEFAULT_TIMEOUTS": "-5"},
		{"DEFAULT_TIMEOUTS": "exec=0"},
		{"DEFAULT_TIMEOUTS": "9223372037"},
		{"WORKERS": "0"},
		{"MAX_REPLICAS": "0"},
		{"IMAGE_UPLOAD_MAX": "0"},
		{"IMAGE_UPLOAD_MAX": "-1Mi"},
		{"IMAGE_UPLOAD_MAX": "lots"},
		{"POOL_SIZE": "0"},
		{"POOL_SIZE": "65"},
		{"POOL_SIZE": "-1"},
		{"POOL_SIZE": "two"},
		{"PROCS": "0"},
		{"PROCS": "half"},
		{"PROCS": "-2"},
	}
	for _, e := range tests {
		if _, err := parseConfig(nil, env(e)); err == nil {
			t.Errorf("parseConfig(%v) accepted", e)
		}
	}
}

// IMAGE_UPLOAD_MAX takes bytes, or a size with a suffix.
func TestParseConfigImageUploadMax(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512Mi": 512 << 20, "3Gi": 3 << 30, "10M": 10_000_000} {
		c, err := parseConfig([]string{"--image-upload-max", in}, env(nil))
		if err != nil || c.ImageUploadMax != want {
			t.Errorf("--image-upload-max %s = %d %v, want %d", in, c.ImageUploadMax, err, want)
		}
	}
}

// POOL_SIZE (or --pool-size) is the pool of a per-request function without
// an io.dockerfaas.pool.size annotation: 1 to 64, the flag winning.
func TestParseConfigPoolSize(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, 2},
		{"env", nil, map[string]string{"POOL_SIZE": "5"}, 5},
		{"the smallest", nil, map[string]string{"POOL_SIZE": "1"}, 1},
		{"the largest", []string{"--pool-size", "64"}, nil, 64},
		{"flag over env", []string{"--pool-size=7"}, map[string]string{"POOL_SIZE": "3"}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env))
			if err != nil || c.PoolSize != tt.want {
				t.Errorf("pool size %d %v, want %d", c.PoolSize, err, tt.want)
			}
		})
	}
	_, err := parseConfig(nil, env(map[string]string{"POOL_SIZE": "100"}))
	if err == nil || !strings.Contains(err.Error(), "POOL_SIZE") || !strings.Contains(err.Error(), "from 1 to 64") {
		t.Errorf("POOL_SIZE=100: %v; want an error naming the setting and its range", err)
	}
}

func TestEnsurePasswordGeneratesOnceWith0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	c := config{StateDir: dir}
	p1, path, generated, err := ensurePassword(c)
	if err != nil || !generated || len(p1) < 24 {
		t.Fatalf("first start: %q %v %v", p1, generated, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode = %v, want 0600", fi.Mode().Perm())
	}
	p2, _, generated, err := ensurePassword(c)
	if err != nil || generated || p2 != p1 {
		t.Fatalf("second start must reuse the password: %q %v %v", p2, generated, err)
	}
	c.AuthPassword = "given"
	if p, _, _, _ := ensurePassword(c); p != "given" {
		t.Fatalf("configured password ignored: %q", p)
	}
}

// TestREADMEDocumentsEverySetting keeps the README's configuration table true.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var c config
	for _, s := range settings(&c) {
		if !strings.Contains(readme, "`"+s.env+"`") || !strings.Contains(readme, "`--"+s.flag+"`") {
			t.Errorf("README.md configuration table lacks %s / --%s", s.env, s.flag)
		}
	}
}

// PROCS: auto is half the CPUs the process may use (at least 1), unless
// GOMAXPROCS is in the environment; a number is taken as it is.
func TestParseProcs(t *testing.T) {
	tests := []struct {
		v, env  string
		current int
		want    int
	}{
		{"auto", "", 1, 1},
		{"auto", "", 2, 1},
		{"auto", "", 3, 1},
		{"auto", "", 16, 8},
		{"auto", "4", 4, 0}, // the environment's GOMAXPROCS stays
		{"3", "", 16, 3},
		{"3", "8", 8, 3},
	}
	for _, tt := range tests {
		if got, err := parseProcs(tt.v, tt.env, tt.current); err != nil || got != tt.want {
			t.Errorf("parseProcs(%q, %q, %d) = %d, %v; want %d", tt.v, tt.env, tt.current, got, err, tt.want)
		}
	}
	c, err := parseConfig([]string{"--procs", "2"}, env(nil))
	if err != nil || c.Procs != 2 {
		t.Fatalf("--procs 2: %d, %v", c.Procs, err)
	}
}
