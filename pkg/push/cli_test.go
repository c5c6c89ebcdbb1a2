package push

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runMain runs the command in process with a fake engine.
func runMain(t *testing.T, eng Engine, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), Env{
		Args:   args,
		Getenv: envOf(env),
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		NewEngine: func() (Engine, func(), error) {
			if eng == nil {
				return nil, nil, errors.New("no engine in this test")
			}
			return eng, func() {}, nil
		},
	})
	return code, out.String(), errb.String()
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{name: "-h", args: []string{"-h"}, code: 0, stdout: "Usage: dockerfaasd push IMAGE"},
		{name: "--help after the image", args: []string{"img", "--help"}, code: 0, stdout: "--password-stdin"},
		{name: "no image", args: nil, code: 2, stderrIn: "IMAGE is required"},
		{name: "two images", args: []string{"a", "b"}, code: 2, stderrIn: "one IMAGE at a time"},
		{name: "unknown flag", args: []string{"img", "--registry", "x"}, code: 2, stderrIn: "flag provided but not defined: -registry"},
		{name: "flag without value", args: []string{"img", "--deploy"}, code: 2, stderrIn: "flag needs an argument"},
		{name: "bad env", args: []string{"img", "--deploy", "fn", "--env", "NOEQUALS"}, code: 2, stderrIn: `--env "NOEQUALS": want KEY=VALUE`},
		{name: "bad label", args: []string{"img", "--deploy", "fn", "-l", "=v"}, code: 2, stderrIn: "--label"},
		{name: "env without deploy", args: []string{"img", "-e", "A=1"}, code: 2, stderrIn: "go with --deploy"},
		{name: "username without password-stdin", args: []string{"img", "-u", "bob"}, code: 2, stderrIn: "--username goes with --password-stdin"},
		{name: "bad timeout", args: []string{"img", "--timeout", "0s"}, code: 2, stderrIn: "--timeout must be positive"},
		{name: "bad gateway", args: []string{"img", "-g", "httpx://x"}, code: 2, stderrIn: "scheme"},
		{name: "empty password on stdin", args: []string{"img", "-s"}, code: 2, stderrIn: "stdin is empty"},
		{name: "engine unreachable", args: []string{"img"}, code: 1, stderrIn: "local Docker Engine: no engine in this test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, map[string]string{"HOME": t.TempDir()}, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if tc.stdout != "" && !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q: %q", tc.stdout, stdout)
			}
			if tc.stderrIn != "" && !strings.Contains(stderr, tc.stderrIn) {
				t.Errorf("stderr lacks %q: %q", tc.stderrIn, stderr)
			}
		})
	}
}

func TestMainCredentialsAndGateway(t *testing.T) {
	const pw = "pw-Zq9-secret"
	archive := randomBytes(256 << 10)
	newEngine := func() *fakeEngine {
		return &fakeEngine{ref: "my-fn:1", img: Image{ID: testImageID, Size: int64(len(archive))}, archive: archive}
	}
	writeConfig := func(t *testing.T, gateway, token string) string {
		dir := t.TempDir()
		cfg := "auths:\n  - gateway: " + gateway + "\n    auth: basic\n    token: " + token + "\n"
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	const adminPW = "YWRtaW46cHctWnE5LXNlY3JldA==" // admin:pw-Zq9-secret

	tests := []struct {
		name     string
		env      func(gw string, t *testing.T) map[string]string
		args     func(gw string) []string
		stdin    string
		code     int
		stderrIn string
	}{
		{
			name:  "password from stdin, gateway flag",
			args:  func(gw string) []string { return []string{"my-fn:1", "--gateway", gw, "--password-stdin"} },
			stdin: pw + "\n",
		},
		{
			name: "faas-cli login for OPENFAAS_URL with a trailing slash",
			env: func(gw string, t *testing.T) map[string]string {
				return map[string]string{"OPENFAAS_URL": gw + "/", "OPENFAAS_CONFIG": writeConfig(t, gw, adminPW)}
			},
			args: func(string) []string { return []string{"my-fn:1"} },
		},
		{
			name: "password-stdin wins over a saved login",
			env: func(gw string, t *testing.T) map[string]string {
				return map[string]string{"OPENFAAS_CONFIG": writeConfig(t, gw, "YWRtaW46d3Jvbmc=")} // admin:wrong
			},
			args:  func(gw string) []string { return []string{"-g", gw, "-s", "my-fn:1"} },
			stdin: pw,
		},
		{
			name: "saved login for another gateway",
			env: func(gw string, t *testing.T) map[string]string {
				return map[string]string{"OPENFAAS_CONFIG": writeConfig(t, "http://elsewhere:8080", adminPW)}
			},
			args:     func(gw string) []string { return []string{"my-fn:1", "-g", gw} },
			code:     1,
			stderrIn: "no credentials: run faas-cli login for",
		},
		{
			name:     "wrong password",
			args:     func(gw string) []string { return []string{"my-fn:1", "-g", gw, "-s"} },
			stdin:    "nope",
			code:     1,
			stderrIn: "credentials from --password-stdin were refused",
		},
		{
			name: "unreadable config: warned, then no credentials",
			env: func(gw string, t *testing.T) map[string]string {
				dir := t.TempDir()
				_ = os.WriteFile(filepath.Join(dir, "config.yml"), []byte("auths: ["), 0o600)
				return map[string]string{"OPENFAAS_CONFIG": dir}
			},
			args:     func(gw string) []string { return []string{"my-fn:1", "-g", gw} },
			code:     1,
			stderrIn: "warning: faas-cli config",
		},
		{
			name: "image absent names the engine",
			env: func(string, *testing.T) map[string]string {
				return map[string]string{"DOCKER_HOST": "unix:///run/node4.sock"}
			},
			args:     func(gw string) []string { return []string{"other:1", "-g", gw, "-s"} },
			stdin:    pw,
			code:     1,
			stderrIn: "other:1: image not found in the local Docker Engine (engine unix:///run/node4.sock)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFakeGateway(t)
			fg.user, fg.pw = "admin", pw
			gw := fg.start().URL
			env := map[string]string{"HOME": t.TempDir()}
			if tc.env != nil {
				for k, v := range tc.env(gw, t) {
					env[k] = v
				}
			}
			code, stdout, stderr := runMain(t, newEngine(), env, tc.stdin, tc.args(gw)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, tc.code, stdout, stderr)
			}
			if tc.stderrIn != "" && !strings.Contains(stderr, tc.stderrIn) {
				t.Errorf("stderr lacks %q: %q", tc.stderrIn, stderr)
			}
			if tc.code == 0 && !strings.Contains(stdout, "Loaded my-fn:latest") {
				t.Errorf("stdout: %q", stdout)
			}
			if strings.Contains(stdout+stderr, pw) || strings.Contains(stdout+stderr, adminPW) {
				t.Fatalf("the password was printed:\n%s\n%s", stdout, stderr)
			}
		})
	}
}
