package api

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/internal/capturetest"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// capture is one request the real faas-cli sent.
type capture = capturetest.Request

// replay says what this daemon answers, per capture folder, to each
// request faas-cli sent to the gateway (in file order). Every answer must be
// one faas-cli handles as the command intends.
var replay = map[string]struct {
	seed      bool     // deploy hello from the stack first
	ns        []string // create these namespaces first
	devFns    []string // deploy these functions into namespace dev first (needs "dev" in ns)
	secrets   []string // create these secrets ("namespace/name") first: a deploy needs the ones it lists
	drop      []string // delete these secrets ("namespace/name") of the fixture first
	wrongPass bool     // the capture is of a rejected password
	want      []int    // codes, one per gateway request
	note      string
}{
	"01-list-not-logged-in":                   {want: []int{401}, note: "bare Bearer is no credentials"},
	"02-login-bad-password":                   {wrongPass: true, want: []int{401}},
	"03-login-ok":                             {want: []int{200}},
	"04-deploy-stack-first":                   {ns: nsDev, want: []int{404, 202, 404, 202}, note: "PUT 404 -> POST 202, for hello and for plain in namespace dev"},
	"05-deploy-stack-update-202":              {seed: true, want: []int{202}},
	"06-deploy-stack-update-200":              {seed: true, want: []int{202}, note: "fake said 200; we always say 202"},
	"07-deploy-stack-update-201-is-failure":   {seed: true, want: []int{202}, note: "never 201: faas-cli exits 1 on it"},
	"08-deploy-image-flags-new":               {ns: nsDev, secrets: []string{"dev/s1"}, want: []int{404, 202}},
	"09-deploy-put-500-no-fallback":           {want: []int{404}, note: "fake said 500; our 404 makes faas-cli POST"},
	"10-deploy-replace":                       {seed: true, want: []int{202, 202}},
	"11-deploy-update-false":                  {want: []int{202}},
	"12-list":                                 {seed: true, want: []int{200}},
	"13-list-verbose":                         {seed: true, want: []int{200}},
	"14-list-json-ns-dev":                     {ns: nsDev, want: []int{200}},
	"15-list-quiet-sort-invocations":          {seed: true, want: []int{200}},
	"16-describe":                             {seed: true, want: []int{200, 200}},
	"17-describe-verbose-ns":                  {ns: nsDev, devFns: []string{"newfn"}, want: []int{200, 200}},
	"18-describe-json":                        {seed: true, want: []int{200, 200}},
	"19-describe-missing":                     {want: []int{404}},
	"20-remove":                               {ns: nsDev, devFns: []string{"newfn"}, want: []int{202}},
	"21-remove-missing":                       {want: []int{404}},
	"22-remove-stack":                         {seed: true, ns: nsDev, devFns: []string{"plain"}, want: []int{202, 202}, note: "plain is in namespace dev"},
	"23-logs-default":                         {seed: true, want: []int{200}},
	"24-logs-nofollow-since-lines":            {ns: nsDev, devFns: []string{"hello"}, want: []int{200}},
	"25-logs-since-time-json":                 {seed: true, want: []int{200}},
	"26-logs-name-instance-keyvalue":          {seed: true, want: []int{200}},
	"27-logs-since-with-local-tz":             {seed: true, want: []int{200}, note: "since with a +05:30 offset"},
	"28-secret-create-literal":                {drop: defaultAPIKey, want: []int{201}},
	"29-secret-create-file-ns":                {ns: nsDev, want: []int{201}},
	"30-secret-create-stdin":                  {want: []int{201}},
	"31-secret-create-conflict":               {want: []int{409}, note: "api-key exists; faas-cli prints the conflict"},
	"32-secret-create-conflict-replace":       {want: []int{409, 202}, note: "--replace: POST 409, then PUT"},
	"33-secret-list":                          {want: []int{200}},
	"34-secret-list-ns-json":                  {ns: nsDev, secrets: []string{"dev/s1"}, want: []int{200}},
	"35-secret-update":                        {want: []int{202}},
	"36-secret-update-missing":                {want: []int{404}},
	"37-secret-remove":                        {want: []int{202}},
	"38-secret-remove-ns":                     {ns: nsDev, secrets: []string{"dev/file-secret"}, want: []int{202}},
	"39-secret-remove-missing":                {want: []int{404}, note: "faas-cli exits 1, as captured"},
	"40-namespace-list":                       {ns: nsDev, want: []int{200}},
	"41-namespaces-deprecated":                {ns: nsDev, want: []int{200}},
	"42-namespace-get":                        {ns: nsDev, want: []int{200}},
	"43-namespace-create":                     {want: []int{201}},
	"44-namespace-update":                     {ns: []string{"staging"}, want: []int{202}},
	"45-namespace-remove":                     {ns: []string{"staging"}, want: []int{202}},
	"46-invoke-sync":                          {want: []int{401}, note: "invoke needs auth unless InvokeOpen; faas-cli sends none"},
	"47-invoke-ns-query-headers-get":          {want: []int{401}, note: "invoke needs auth unless InvokeOpen"},
	"48-invoke-async-callback":                {want: []int{404}, note: "async-function: later issue"},
	"49-invoke-sign":                          {want: []int{401}, note: "invoke needs auth unless InvokeOpen"},
	"50-version":                              {want: []int{200}},
	"51-version-json":                         {want: []int{200}},
	"52-version-info-without-gateway-version": {want: []int{200}},
	"53-version-info-without-provider":        {want: []int{200}},
	"54-ready-gateway":                        {want: []int{200}},
	"54a-redeploy-for-ready":                  {ns: nsDev, want: []int{404, 202, 404, 202}, note: "plain is in namespace dev"},
	"55-ready-function":                       {seed: true, want: []int{200}},
	"56-ready-function-missing":               {want: []int{404, 404}},
	"57-store-list":                           {want: []int{}, note: "only the store URL, no gateway request"},
	"58-store-deploy":                         {want: []int{404, 202}, note: "the store URL GET is not a gateway request"},
	"59-list-token-while-basic-logged-in":     {seed: true, want: []int{200}},
	"60-list-token-not-logged-in":             {want: []int{401}, note: "a Bearer token is not basic auth"},
	"62-diff":                                 {seed: true, want: []int{200}},
}

// defaultAPIKey is the secret every fixture starts with.
var defaultAPIKey = []string{store.DefaultNamespace + "/api-key"}

// nsDev is the namespace the captured stack and commands use besides the
// default.
var nsDev = []string{"dev"}

// gatewayPath reports whether a captured request went to the gateway API
// (57/58 also fetch the function store from the same fake host).
func gatewayPath(p string) bool {
	for _, prefix := range []string{"/system/", "/function/", "/async-function/", "/healthz"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

func TestCaptureReplay(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range capturetest.Folders(t) {
		seen[name] = true
		exp, ok := replay[name]
		if !ok {
			t.Errorf("capture %s has no entry in the replay table", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			caps := loadCaptures(t, filepath.Join(capturetest.Dir, name))
			if len(caps) != len(exp.want) {
				t.Fatalf("%d gateway requests captured, table expects %d", len(caps), len(exp.want))
			}
			invoke := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
			f := newFixture(t, func(c *Config) {
				c.Invoke = invoke
				c.Logs = noLogs{}
			})
			if exp.seed {
				f.deploy(t, helloBody)
			}
			for _, ns := range exp.ns {
				f.createNamespace(t, ns)
			}
			for _, k := range exp.drop {
				ns, name, _ := strings.Cut(k, "/")
				if err := f.store.DeleteSecret(t.Context(), ns, name); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range exp.secrets {
				ns, name, _ := strings.Cut(k, "/")
				if _, err := f.store.CreateSecret(t.Context(), ns, name, []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			for _, fn := range exp.devFns {
				f.deploy(t, `{"service":"`+fn+`","image":"docker.io/example/`+fn+`:latest","namespace":"dev"}`)
			}
			for i, c := range caps {
				w := f.send(t, c.Method, withQuery(c.Path, c.RawQuery), c.Body, func(r *http.Request) {
					for k, vs := range c.Headers {
						if k != "Authorization" && k != "Content-Length" {
							r.Header[k] = vs
						}
					}
					authFor(r, c.AuthScheme, exp.wrongPass)
				})
				if w.Code != exp.want[i] {
					t.Fatalf("request %d %s %s: got %d %q, want %d (%s)", i, c.Method, c.Path, w.Code, w.Body.String(), exp.want[i], exp.note)
				}
				checkReplayBody(t, c, w.Code, w.Body.Bytes())
			}
		})
	}
	for name := range replay {
		if !seen[name] {
			t.Errorf("replay table names %s, which is not among the captures", name)
		}
	}
}

// loadCaptures reads a folder's gateway requests in file (sequence) order.
func loadCaptures(t *testing.T, dir string) []capture {
	t.Helper()
	return gatewayRequests(capturetest.Load(t, dir))
}

// gatewayRequests keeps the requests that went to the gateway API.
func gatewayRequests(reqs []capture) []capture {
	return slices.DeleteFunc(reqs, func(c capture) bool { return !gatewayPath(c.Path) })
}

// withQuery is the request target of path and a raw query.
func withQuery(path, rawQuery string) string {
	if rawQuery == "" {
		return path
	}
	return path + "?" + rawQuery
}

// authFor recreates the redacted Authorization header from the recorded
// scheme: basic with the test credentials (or a wrong password), the bare
// "Bearer" of a CLI that is not logged in, or a bearer token.
func authFor(r *http.Request, scheme string, wrongPass bool) {
	switch scheme {
	case "Basic":
		pass := testPass
		if wrongPass {
			pass = "wrong"
		}
		r.SetBasicAuth(testUser, pass)
	case "Bearer(empty)":
		r.Header.Set("Authorization", "Bearer")
	case "Bearer":
		r.Header.Set("Authorization", "Bearer sometoken")
	}
}

// checkReplayBody checks that successful answers have the shape faas-cli
// parses.
func checkReplayBody(t *testing.T, c capture, code int, body []byte) {
	t.Helper()
	if code != http.StatusOK || c.Method != http.MethodGet {
		return
	}
	switch {
	case c.Path == "/system/functions":
		var list []types.FunctionStatus
		if err := json.Unmarshal(body, &list); err != nil || list == nil {
			t.Errorf("list: want a JSON array, got %q (%v)", body, err)
		}
	case strings.HasPrefix(c.Path, "/system/function/"):
		var st types.FunctionStatus
		if err := json.Unmarshal(body, &st); err != nil || st.Name != strings.TrimPrefix(c.Path, "/system/function/") {
			t.Errorf("describe: got %q (%v)", body, err)
		}
	case c.Path == "/system/info":
		var info wireInfo
		if err := json.Unmarshal(body, &info); err != nil || info.Version == nil || info.Provider == nil ||
			info.Provider.Version == nil || info.Version.Release == "" || info.Provider.Provider == "" {
			t.Errorf("info: got %q (%v)", body, err)
		}
	case c.Path == "/system/namespaces":
		var ns []string
		if err := json.Unmarshal(body, &ns); err != nil || len(ns) == 0 || ns[0] != "openfaas-fn" {
			t.Errorf("namespaces: got %q (%v)", body, err)
		}
	case strings.HasPrefix(c.Path, "/system/namespace/"):
		var ns types.FunctionNamespace
		if err := json.Unmarshal(body, &ns); err != nil || ns.Name != strings.TrimPrefix(c.Path, "/system/namespace/") {
			t.Errorf("namespace get: got %q (%v)", body, err)
		}
	case c.Path == "/system/secrets":
		// faas-cli prints the names; values never leave the daemon.
		var list []types.Secret
		if err := json.Unmarshal(body, &list); err != nil || len(list) == 0 {
			t.Errorf("secret list: want a non-empty JSON array, got %q (%v)", body, err)
		}
		for _, sec := range list {
			if sec.Name == "" || sec.Value != "" || len(sec.RawValue) != 0 {
				t.Errorf("secret list entry %+v: want a name and no value", sec)
			}
		}
	}
}
