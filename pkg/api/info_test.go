package api

import (
	"runtime"
	"testing"
)

// wireInfo mirrors what faas-cli version and the certifier read; pointers
// so that a missing object is visible (it crashes faas-cli [cap 52, 53]).
type wireInfo struct {
	Provider *struct {
		Provider      string       `json:"provider"`
		Orchestration string       `json:"orchestration"`
		Version       *wireVersion `json:"version"`
	} `json:"provider"`
	Version *wireVersion `json:"version"`
	Arch    string       `json:"arch"`
}

type wireVersion struct {
	SHA     string `json:"sha"`
	Release string `json:"release"`
}

func TestInfo(t *testing.T) {
	tests := []struct {
		name     string
		info     Info
		sha, rel string
	}{
		{"set", Info{Version: "0.1.0", SHA: "abc123"}, "abc123", "0.1.0"},
		{"defaults", Info{}, "unknown", "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Info = tt.info })
			w := f.do(t, "GET", "/system/info", "")
			if w.Code != 200 {
				t.Fatalf("got %d", w.Code)
			}
			var got wireInfo
			decodeJSON(t, w, &got)
			if got.Provider == nil || got.Provider.Version == nil || got.Version == nil {
				t.Fatalf("missing objects in %s", w.Body.String())
			}
			p := got.Provider
			if p.Provider != "dockerfaasd" || p.Orchestration != "docker" || got.Arch != runtime.GOARCH {
				t.Errorf("provider/orchestration/arch = %q %q %q", p.Provider, p.Orchestration, got.Arch)
			}
			for _, v := range []*wireVersion{p.Version, got.Version} {
				if v.SHA != tt.sha || v.Release != tt.rel {
					t.Errorf("version = %+v, want sha %q release %q", *v, tt.sha, tt.rel)
				}
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, "GET", "/system/namespaces", "")
	var got []string
	decodeJSON(t, w, &got)
	if w.Code != 200 || len(got) != 1 || got[0] != "openfaas-fn" {
		t.Fatalf("got %d %v, want 200 [openfaas-fn]", w.Code, got)
	}
}

// GET /system/providers: the provider part of /system/info and the
// features this configuration enables.
func TestProviders(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*Config)
		want, not []string
	}{
		{"bare", nil, []string{"namespaces", "secrets", "executions"}, []string{"logs", "job-mode", "build", "async"}},
		{"job mode and isolation", func(c *Config) { c.JobMode, c.Isolation = true, true }, []string{"job-mode", "per-request-isolation"}, []string{"logs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.edit)
			if w := f.send(t, "GET", "/system/providers", "", nil); w.Code != 401 {
				t.Fatalf("without credentials: %d, want 401", w.Code)
			}
			w := f.do(t, "GET", "/system/providers", "")
			if w.Code != 200 {
				t.Fatalf("got %d", w.Code)
			}
			var got struct {
				Provider, Orchestration, Arch string
				Version                       *wireVersion
				Features                      []string
			}
			decodeJSON(t, w, &got)
			if got.Provider != "dockerfaasd" || got.Orchestration != "docker" || got.Arch != runtime.GOARCH {
				t.Errorf("provider/orchestration/arch = %q %q %q", got.Provider, got.Orchestration, got.Arch)
			}
			if got.Version == nil || got.Version.Release != "0.1.0" || got.Version.SHA != "abc123" {
				t.Errorf("version = %+v, want 0.1.0 abc123", got.Version)
			}
			has := map[string]bool{}
			for _, f := range got.Features {
				has[f] = true
			}
			for _, f := range tt.want {
				if !has[f] {
					t.Errorf("features %v lack %q", got.Features, f)
				}
			}
			for _, f := range tt.not {
				if has[f] {
					t.Errorf("features %v have %q, which this configuration lacks", got.Features, f)
				}
			}
		})
	}
}
