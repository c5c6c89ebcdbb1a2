package push

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultGateway is faas-cli's default gateway address.
const DefaultGateway = "http://127.0.0.1:8080"

// GatewayURL picks the gateway the way faas-cli does: the flag, else
// OPENFAAS_URL, else DefaultGateway; then lowercased, trailing slashes cut
// and http:// prepended when no scheme is given. The result is also the key
// faas-cli login saved credentials under, so it must be normalised exactly
// like faas-cli's.
func GatewayURL(flagValue string, getenv func(string) string) (*url.URL, error) {
	raw := flagValue
	if raw == "" {
		raw = getenv("OPENFAAS_URL")
	}
	if raw == "" {
		raw = DefaultGateway
	}
	norm := normalizeGateway(raw)
	u, err := url.Parse(norm)
	if err != nil {
		return nil, fmt.Errorf("gateway %q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("gateway %q: the scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("gateway %q has no host", raw)
	}
	if u.User != nil {
		// Credentials in the URL would be printed with it.
		return nil, fmt.Errorf("gateway URL must not carry credentials; use faas-cli login or --password-stdin")
	}
	return u, nil
}

// normalizeGateway is faas-cli's getGatewayURL normalisation.
func normalizeGateway(s string) string {
	s = strings.ToLower(strings.TrimRight(strings.TrimSpace(s), "/"))
	if !strings.HasPrefix(s, "http") {
		s = "http://" + s
	}
	return s
}

// Credentials authenticate requests to the gateway. The zero value sends
// none.
type Credentials struct {
	// Username and Password are basic auth.
	Username, Password string
	// Token is sent as a bearer token (faas-cli's oauth2 logins) when no
	// password is set.
	Token string
	// Source says where they came from, for messages (never the secret).
	Source string
}

// configFile is the part of faas-cli's config.yml we read.
type configFile struct {
	Auths []struct {
		Gateway string `yaml:"gateway"`
		Auth    string `yaml:"auth"`
		Token   string `yaml:"token"`
	} `yaml:"auths"`
}

// ConfigPath is where faas-cli keeps its config.yml: the directory
// OPENFAAS_CONFIG names, else .openfaas in the working directory when CI is
// true or 1 (faas-cli's CI mode), else ~/.openfaas.
func ConfigPath(getenv func(string) string) (string, error) {
	dir := getenv("OPENFAAS_CONFIG")
	if dir == "" {
		if ci := getenv("CI"); ci == "true" || ci == "1" {
			return filepath.Join(".openfaas", "config.yml"), nil
		}
		dir = "~/.openfaas"
	}
	if dir == "~" || strings.HasPrefix(dir, "~/") {
		home := getenv("HOME")
		if home == "" {
			var err error
			if home, err = os.UserHomeDir(); err != nil {
				return "", fmt.Errorf("finding the faas-cli config: %w", err)
			}
		}
		dir = filepath.Join(home, strings.TrimPrefix(dir, "~"))
	}
	return filepath.Join(dir, "config.yml"), nil
}

// errNoSavedCredentials means faas-cli saved none for the gateway.
var errNoSavedCredentials = errors.New("no saved credentials")

// SavedCredentials returns what `faas-cli login` saved for gateway in the
// config file at path. Entries are matched after the same normalisation as
// the gateway (faas-cli saves them normalised; a hand-edited trailing slash
// or capital still matches). It returns errNoSavedCredentials when the file
// or the entry does not exist.
func SavedCredentials(path string, gateway *url.URL) (Credentials, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, errNoSavedCredentials
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("reading faas-cli config: %w", err)
	}
	var cf configFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		return Credentials{}, fmt.Errorf("faas-cli config %s: %w", path, err)
	}
	want := gateway.String()
	for _, a := range cf.Auths {
		if normalizeGateway(a.Gateway) != want {
			continue
		}
		src := "faas-cli login (" + path + ")"
		switch a.Auth {
		case "basic", "":
			raw, err := base64.StdEncoding.DecodeString(a.Token)
			if err != nil {
				return Credentials{}, fmt.Errorf("faas-cli config %s: the token for %s is not base64", path, a.Gateway)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return Credentials{}, fmt.Errorf("faas-cli config %s: the token for %s is not user:password", path, a.Gateway)
			}
			return Credentials{Username: user, Password: pass, Source: src}, nil
		case "oauth2":
			return Credentials{Token: a.Token, Source: src}, nil
		default:
			return Credentials{}, fmt.Errorf("faas-cli config %s: unknown auth type %q for %s", path, a.Auth, a.Gateway)
		}
	}
	return Credentials{}, errNoSavedCredentials
}
