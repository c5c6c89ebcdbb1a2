package api

import (
	"net/http"
	"runtime"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
)

// Names reported as the provider in /system/info.
const (
	providerName  = "dockerfaasd"
	orchestration = "docker"
)

// Info is the daemon's build identity, reported by /system/info.
type Info struct {
	// Version is the release, "dev" when empty.
	Version string
	// SHA is the source commit, "unknown" when empty.
	SHA string
}

// gatewayInfo is the OpenFaaS GatewayInfo shape. It is declared here because
// faas-provider only has the provider half. One daemon is both gateway and
// provider, so it reports the same version twice.
type gatewayInfo struct {
	Provider *types.ProviderInfo `json:"provider"`
	Version  *types.VersionInfo  `json:"version"`
	Arch     string              `json:"arch"`
}

// systemInfo answers `faas-cli version`, which crashes when version,
// provider or provider.version is missing, and the certifier, which wants
// every value non-empty.
func (a *api) systemInfo(w http.ResponseWriter, _ *http.Request) {
	v := a.version()
	gw, prov := v, v
	writeJSON(w, a.log, http.StatusOK, gatewayInfo{
		Provider: &types.ProviderInfo{Name: providerName, Orchestration: orchestration, Version: &prov},
		Version:  &gw,
		Arch:     runtime.GOARCH,
	})
}

// version is the build identity with its defaults filled in.
func (a *api) version() types.VersionInfo {
	v := types.VersionInfo{SHA: a.info.SHA, Release: a.info.Version}
	if v.SHA == "" {
		v.SHA = "unknown"
	}
	if v.Release == "" {
		v.Release = "dev"
	}
	return v
}

// infoRoutes mounts what describes the daemon itself, behind auth like the
// rest of /system.
func (a *api) infoRoutes(r *mux.Router, auth *basicAuth, cfg Config) {
	feats := features(cfg)
	r.Handle("/system/info", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.systemInfo)}))
	r.Handle("/system/providers", auth.wrap(methods{http.MethodGet: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := a.version()
		writeJSON(w, a.log, http.StatusOK, providerInfo{
			Provider:      providerName,
			Orchestration: orchestration,
			Version:       &v,
			Arch:          runtime.GOARCH,
			Features:      feats,
		})
	})}))
}

// providerInfo answers GET /system/providers. faas-provider defines no such
// route; it is /system/info's provider part plus what this daemon, on this
// runtime, can do, so a client can tell before it calls a route that would
// answer 501.
type providerInfo struct {
	Provider      string             `json:"provider"`
	Orchestration string             `json:"orchestration"`
	Version       *types.VersionInfo `json:"version"`
	Arch          string             `json:"arch"`
	Features      []string           `json:"features"`
}

// features lists what cfg enables, in a fixed order. The names are part of
// the API (README "API"): add, never rename.
func features(cfg Config) []string {
	out := []string{"namespaces", "secrets", "scale-to-zero", "executions"}
	add := func(on bool, name string) {
		if on {
			out = append(out, name)
		}
	}
	add(cfg.Invoke != nil, "invoke")
	add(cfg.Async != nil, "async")
	add(cfg.Logs != nil, "logs")
	add(cfg.Usage != nil, "usage")
	add(cfg.Images != nil, "image-upload")
	add(cfg.Build != nil, "build")
	add(cfg.JobMode, "job-mode")
	add(cfg.Isolation, "per-request-isolation")
	add(cfg.Routes != nil, "path-routes")
	add(cfg.AddressPort != 0, "function-addresses")
	add(cfg.Nodes != nil, "multi-host")
	add(cfg.Metrics != nil, "metrics")
	add(cfg.Debug != nil, "debug")
	return out
}
