package api

import (
	"net/http"
	"runtime"

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
	v := types.VersionInfo{SHA: a.info.SHA, Release: a.info.Version}
	if v.SHA == "" {
		v.SHA = "unknown"
	}
	if v.Release == "" {
		v.Release = "dev"
	}
	gw, prov := v, v
	writeJSON(w, a.log, http.StatusOK, gatewayInfo{
		Provider: &types.ProviderInfo{Name: providerName, Orchestration: orchestration, Version: &prov},
		Version:  &gw,
		Arch:     runtime.GOARCH,
	})
}
