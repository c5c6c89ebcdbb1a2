package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/build"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// The payload secret's file is logged, its value never; the builder signs
// with the secret generated, or with the one given in the file.
func TestNewBuildServiceSecretLog(t *testing.T) {
	tests := []struct {
		name  string
		given string // the file's content before start; "": none
		msg   string
	}{
		{"generated", "", "builder payload secret generated"},
		{"given", "  given-payload-secret-value\n", "builder payload secret read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config{StateDir: dir, MaxReplicas: 5}
			cfg.Build.SecretFile = filepath.Join(dir, "secrets", "payload-secret")
			cfg.Build.TemplatesDir = filepath.Join(dir, "templates")
			if tc.given != "" {
				if err := os.MkdirAll(filepath.Dir(cfg.Build.SecretFile), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cfg.Build.SecretFile, []byte(tc.given), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			log := logrus.New()
			log.SetOutput(&out)
			log.SetFormatter(&logrus.JSONFormatter{})
			log.SetLevel(logrus.TraceLevel)
			st := store.NewMemory()
			t.Cleanup(func() { _ = st.Close() })

			svc, err := newBuildService(cfg, nil, st, scaling.Defaults{}, log)
			if err != nil {
				t.Fatalf("newBuildService: %v", err)
			}
			raw, err := os.ReadFile(cfg.Build.SecretFile)
			if err != nil {
				t.Fatal(err)
			}
			secret := strings.TrimSpace(string(raw))
			if secret == "" || (tc.given != "" && secret != strings.TrimSpace(tc.given)) {
				t.Fatalf("secret file holds %q", raw)
			}

			if strings.Contains(out.String(), secret) {
				t.Errorf("the secret's value is in the log:\n%s", out.String())
			}
			found := false
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				var e map[string]any
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("log line %q: %v", sc.Text(), err)
				}
				if strings.HasPrefix(e["msg"].(string), tc.msg) && e["file"] == cfg.Build.SecretFile {
					found = true
				}
			}
			if !found {
				t.Errorf("no %q entry with file=%s in the log:\n%s", tc.msg, cfg.Build.SecretFile, out.String())
			}

			// The builder checks signatures with that secret.
			body := []byte("request tar")
			sp, err := svc.Spool(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Remove()
			if !build.VerifySignature(build.Sign(body, []byte(secret)), sp.Sum) {
				t.Error("a body signed with the secret in the file does not verify")
			}
		})
	}
}
