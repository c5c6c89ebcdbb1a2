package push

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestGatewayURL(t *testing.T) {
	tests := []struct {
		name, flag string
		env        map[string]string
		want, err  string
	}{
		{name: "default", want: "http://127.0.0.1:8080"},
		{name: "env", env: map[string]string{"OPENFAAS_URL": "http://gw:8080"}, want: "http://gw:8080"},
		{name: "flag wins over env", flag: "https://a.example:8443", env: map[string]string{"OPENFAAS_URL": "http://gw:8080"}, want: "https://a.example:8443"},
		{name: "trailing slashes cut", flag: "http://127.0.0.1:8080///", want: "http://127.0.0.1:8080"},
		{name: "lowercased like faas-cli", flag: "HTTP://GW.Example:8080/", want: "http://gw.example:8080"},
		{name: "no scheme means http", flag: "127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{name: "path kept", flag: "https://host/openfaas/", want: "https://host/openfaas"},
		{name: "bad scheme", flag: "httpx://host", err: "scheme"},
		{name: "credentials in URL refused", flag: "http://admin:secret@host:8080", err: "must not carry credentials"},
		{name: "no host", flag: "http://", err: "no host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := GatewayURL(tc.flag, envOf(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tc.want {
				t.Fatalf("got %s, want %s", u, tc.want)
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "home", env: map[string]string{"HOME": "/home/u"}, want: "/home/u/.openfaas/config.yml"},
		{name: "OPENFAAS_CONFIG is the directory", env: map[string]string{"HOME": "/home/u", "OPENFAAS_CONFIG": "/etc/ofc"}, want: "/etc/ofc/config.yml"},
		{name: "OPENFAAS_CONFIG with ~", env: map[string]string{"HOME": "/home/u", "OPENFAAS_CONFIG": "~/x"}, want: "/home/u/x/config.yml"},
		{name: "CI=true uses the working directory", env: map[string]string{"HOME": "/home/u", "CI": "true"}, want: ".openfaas/config.yml"},
		{name: "CI=1 too", env: map[string]string{"HOME": "/home/u", "CI": "1"}, want: ".openfaas/config.yml"},
		{name: "OPENFAAS_CONFIG wins over CI", env: map[string]string{"CI": "true", "OPENFAAS_CONFIG": "/etc/ofc"}, want: "/etc/ofc/config.yml"},
		{name: "CI=false is not CI", env: map[string]string{"HOME": "/home/u", "CI": "false"}, want: "/home/u/.openfaas/config.yml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConfigPath(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// faasCLIConfig is a config.yml as faas-cli login writes it (yaml.v3,
// indent 2): YWRtaW46cHctMTpjb2xvbg== is admin:pw-1:colon.
const faasCLIConfig = `auths:
  - gateway: http://127.0.0.1:8080
    auth: basic
    token: YWRtaW46cHctMTpjb2xvbg==
  - gateway: https://other.example
    auth: basic
    token: Ym9iOmJvYnNwdw==
  - gateway: https://oauth.example
    auth: oauth2
    token: eyJhbGciOi.jwt
`

func TestSavedCredentials(t *testing.T) {
	tests := []struct {
		name, config, gateway string
		want                  Credentials
		none                  bool
		err                   string
	}{
		{name: "exact entry", config: faasCLIConfig, gateway: "http://127.0.0.1:8080",
			want: Credentials{Username: "admin", Password: "pw-1:colon"}},
		{name: "gateway given with slash and capitals", config: faasCLIConfig, gateway: "HTTPS://Other.example/",
			want: Credentials{Username: "bob", Password: "bobspw"}},
		{name: "hand-edited entry with trailing slash", config: "auths:\n- gateway: http://GW:8080/\n  auth: basic\n  token: dTpw\n",
			gateway: "http://gw:8080", want: Credentials{Username: "u", Password: "p"}},
		{name: "oauth2 token", config: faasCLIConfig, gateway: "https://oauth.example",
			want: Credentials{Token: "eyJhbGciOi.jwt"}},
		{name: "other gateway", config: faasCLIConfig, gateway: "http://127.0.0.1:9999", none: true},
		{name: "http is not https", config: faasCLIConfig, gateway: "http://other.example", none: true},
		{name: "no file", gateway: "http://127.0.0.1:8080", none: true},
		{name: "empty file", config: "", gateway: "http://127.0.0.1:8080", none: true},
		{name: "token not base64", config: "auths:\n- gateway: http://gw\n  auth: basic\n  token: '%%%'\n", gateway: "http://gw", err: "not base64"},
		{name: "token without colon", config: "auths:\n- gateway: http://gw\n  auth: basic\n  token: bm9jb2xvbg==\n", gateway: "http://gw", err: "not user:password"},
		{name: "unknown auth type", config: "auths:\n- gateway: http://gw\n  auth: kerberos\n  token: x\n", gateway: "http://gw", err: "unknown auth type"},
		{name: "not yaml", config: "auths: [\n", gateway: "http://gw", err: "faas-cli config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yml")
			if tc.name != "no file" {
				if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			gw, err := GatewayURL(tc.gateway, envOf(nil))
			if err != nil {
				t.Fatal(err)
			}
			got, err := SavedCredentials(path, gw)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			case tc.none:
				if !errors.Is(err, errNoSavedCredentials) {
					t.Fatalf("got %+v, %v; want no credentials", got, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got.Username != tc.want.Username || got.Password != tc.want.Password || got.Token != tc.want.Token {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if !strings.Contains(got.Source, path) {
				t.Fatalf("source %q does not name the file", got.Source)
			}
		})
	}
}
