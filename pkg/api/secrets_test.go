package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// createSecret stores a secret directly, for tests that need one to exist.
func (f *fixture) createSecret(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := f.store.CreateSecret(context.Background(), ns, name, []byte("value-of-"+name)); err != nil {
		t.Fatalf("create secret %s/%s: %v", ns, name, err)
	}
}

// secretValue reads a stored value, "" with ok false when there is none.
func (f *fixture) secretValue(t *testing.T, ns, name string) (string, bool) {
	t.Helper()
	s, err := f.store.GetSecret(context.Background(), ns, name)
	if err != nil {
		return "", false
	}
	return string(s.Value), true
}

// secretsSnapshot is every secret with its revision, to prove a request
// changed nothing.
func (f *fixture) secretsSnapshot(t *testing.T) string {
	t.Helper()
	list, err := f.store.ListSecrets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	return string(b)
}

func secretBody(t *testing.T, s types.Secret) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSecretCRUD walks faas-cli's secret commands [cap 28-39] and checks the
// codes, the messages faas-cli prints, and what reaches the store.
func TestSecretCRUD(t *testing.T) {
	f := newFixture(t, nil)
	steps := []struct {
		name, method, target, body string
		code                       int
		msg                        string
		value                      string // stored value of "db-pass" afterwards; "" means none
	}{
		{"create [cap 28]", "POST", "/system/secrets", `{"name":"db-pass","value":"literal-value"}`, 201, "", "literal-value"},
		{"duplicate [cap 31]", "POST", "/system/secrets", `{"name":"db-pass","value":"again"}`, 409, `secret with the name "db-pass" already exists` + "\n", "literal-value"},
		{"update [cap 35]", "PUT", "/system/secrets", `{"name":"db-pass","value":"new-value"}`, 202, "", "new-value"},
		{"update missing [cap 36]", "PUT", "/system/secrets", `{"name":"nothere","value":"x"}`, 404, "unable to find secret: nothere\n", "new-value"},
		{"remove missing [cap 39]", "DELETE", "/system/secrets", `{"name":"nothere"}`, 404, "unable to find secret: nothere\n", "new-value"},
		{"remove [cap 37]", "DELETE", "/system/secrets", `{"name":"db-pass"}`, 202, "", ""},
		{"remove again", "DELETE", "/system/secrets", `{"name":"db-pass"}`, 404, "unable to find secret: db-pass\n", ""},
		{"update removed", "PUT", "/system/secrets", `{"name":"db-pass","value":"x"}`, 404, "unable to find secret: db-pass\n", ""},
		{"create again", "POST", "/system/secrets", `{"name":"db-pass","value":"back"}`, 201, "", "back"},
	}
	for _, s := range steps {
		w := f.do(t, s.method, s.target, s.body)
		if w.Code != s.code || (s.msg != "" && w.Body.String() != s.msg) {
			t.Fatalf("%s: got %d %q, want %d %q", s.name, w.Code, w.Body.String(), s.code, s.msg)
		}
		got, ok := f.secretValue(t, store.DefaultNamespace, "db-pass")
		if s.value == "" && ok || s.value != "" && got != s.value {
			t.Fatalf("%s: stored value %q (present %v), want %q", s.name, got, ok, s.value)
		}
	}
}

// TestSecretList: names and namespaces only, never a value, sorted; an
// empty namespace is [] rather than null [cap 33, 34].
func TestSecretList(t *testing.T) {
	f := newFixture(t, nil)
	for _, b := range []string{`{"name":"zeta","value":"v-zeta"}`, `{"name":"alpha","rawValue":"` + base64.StdEncoding.EncodeToString([]byte("v-alpha")) + `"}`} {
		if w := f.do(t, "POST", "/system/secrets", b); w.Code != 201 {
			t.Fatalf("create: %d %q", w.Code, w.Body.String())
		}
	}
	for _, target := range []string{"/system/secrets", "/system/secrets?namespace=openfaas-fn"} {
		w := f.do(t, "GET", target, "")
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %q", target, w.Code, w.Body.String())
		}
		var raw []map[string]any
		decodeJSON(t, w, &raw)
		want := []map[string]any{
			{"name": "alpha", "namespace": "openfaas-fn"},
			{"name": "api-key", "namespace": "openfaas-fn"}, // the fixture's
			{"name": "zeta", "namespace": "openfaas-fn"},
		}
		if fmt.Sprint(raw) != fmt.Sprint(want) {
			t.Errorf("GET %s = %v, want exactly %v", target, raw, want)
		}
		if strings.Contains(w.Body.String(), "v-") {
			t.Errorf("GET %s leaks a value: %s", target, w.Body.String())
		}
	}
	f.createNamespace(t, "dev")
	w := f.do(t, "GET", "/system/secrets?namespace=dev", "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("empty namespace: got %d %q, want 200 []", w.Code, w.Body.String())
	}
	if w := f.do(t, "GET", "/system/secrets?namespace=nowhere", ""); w.Code != 400 {
		t.Errorf("unknown namespace: got %d %q, want 400", w.Code, w.Body.String())
	}
}

// TestSecretRawValue: rawValue (base64 bytes) wins over value when it is not
// empty, as faas-cli --from-file sends both [cap 29]; value is used as is.
func TestSecretRawValue(t *testing.T) {
	raw := []byte("line1\nline2 \n\x00\xff") // untrimmed, binary
	tests := []struct {
		name string
		body types.Secret
		want []byte
	}{
		{"both: raw wins", types.Secret{Name: "s", Value: "line1\nline2", RawValue: raw}, raw},
		{"raw only", types.Secret{Name: "s", RawValue: raw}, raw},
		{"value only", types.Secret{Name: "s", Value: " padded \n"}, []byte(" padded \n")},
		{"empty raw: value", types.Secret{Name: "s", Value: "v", RawValue: []byte{}}, []byte("v")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if w := f.do(t, "POST", "/system/secrets", secretBody(t, tt.body)); w.Code != 201 {
				t.Fatalf("create: %d %q", w.Code, w.Body.String())
			}
			if got, _ := f.secretValue(t, "", "s"); !bytes.Equal([]byte(got), tt.want) {
				t.Errorf("stored %q, want %q", got, tt.want)
			}
			// PUT follows the same rule.
			upd := tt.body
			upd.Value, upd.RawValue = "updated", []byte("updated-raw")
			if w := f.do(t, "PUT", "/system/secrets", secretBody(t, upd)); w.Code != 202 {
				t.Fatalf("update: %d %q", w.Code, w.Body.String())
			}
			if got, _ := f.secretValue(t, "", "s"); got != "updated-raw" {
				t.Errorf("after update: stored %q, want the rawValue", got)
			}
		})
	}
}

// TestSecretNamespaces: the namespace comes from the body or, failing that,
// the query [§0 point 9]; secrets of the same name in two namespaces are
// two secrets.
func TestSecretNamespaces(t *testing.T) {
	f := newFixture(t, nil)
	f.createNamespace(t, "dev")
	f.createNamespace(t, "prod")
	steps := []struct {
		method, target, body string
		code                 int
	}{
		{"POST", "/system/secrets?namespace=dev", `{"name":"s","value":"in-dev"}`, 201},
		{"POST", "/system/secrets?namespace=dev", `{"name":"s","namespace":"prod","value":"in-prod"}`, 201}, // body wins
		{"POST", "/system/secrets", `{"name":"s","value":"in-default"}`, 201},
		{"PUT", "/system/secrets", `{"name":"s","namespace":"dev","value":"dev-2"}`, 202},
		{"PUT", "/system/secrets?namespace=prod", `{"name":"s","value":"prod-2"}`, 202},
		{"POST", "/system/secrets?namespace=nowhere", `{"name":"t","value":"x"}`, 400},
		{"POST", "/system/secrets", `{"name":"t","namespace":"nowhere","value":"x"}`, 400},
		{"PUT", "/system/secrets", `{"name":"s","namespace":"nowhere","value":"x"}`, 400},
		{"DELETE", "/system/secrets", `{"name":"s","namespace":"nowhere"}`, 400},
	}
	for _, s := range steps {
		if w := f.do(t, s.method, s.target, s.body); w.Code != s.code {
			t.Fatalf("%s %s %s: got %d %q, want %d", s.method, s.target, s.body, w.Code, w.Body.String(), s.code)
		}
	}
	for ns, want := range map[string]string{"dev": "dev-2", "prod": "prod-2", store.DefaultNamespace: "in-default"} {
		if got, _ := f.secretValue(t, ns, "s"); got != want {
			t.Errorf("%s/s = %q, want %q", ns, got, want)
		}
	}
	// Delete with the namespace in the body [cap 38], then in the query.
	if w := f.do(t, "DELETE", "/system/secrets", `{"name":"s","namespace":"dev"}`); w.Code != 202 {
		t.Fatalf("delete dev/s: %d %q", w.Code, w.Body.String())
	}
	if w := f.do(t, "DELETE", "/system/secrets?namespace=prod", `{"name":"s"}`); w.Code != 202 {
		t.Fatalf("delete prod/s: %d %q", w.Code, w.Body.String())
	}
	for ns, present := range map[string]bool{"dev": false, "prod": false, store.DefaultNamespace: true} {
		if _, ok := f.secretValue(t, ns, "s"); ok != present {
			t.Errorf("%s/s present = %v, want %v", ns, ok, present)
		}
	}
}

// TestSecretBadInput: refused requests say why and change nothing.
func TestSecretBadInput(t *testing.T) {
	big := strings.Repeat("x", maxSecretBytes+1)
	tests := []struct {
		name, method, body string
		code               int
		msg                string
	}{
		{"empty body", "POST", ``, 400, "request body is empty"},
		{"bad JSON", "POST", `{"name":`, 400, "invalid JSON body"},
		{"array", "POST", `[{"name":"a","value":"b"}]`, 400, "expected a JSON object"},
		{"no name", "POST", `{"value":"v"}`, 400, "name is required"},
		{"upper case", "POST", `{"name":"Api-Key","value":"v"}`, 400, "name Api-Key is not a valid secret name"},
		{"underscore", "POST", `{"name":"api_key","value":"v"}`, 400, "not a valid secret name"},
		{"path", "POST", `{"name":"../etc/passwd","value":"v"}`, 400, "not a valid secret name"},
		{"dot", "POST", `{"name":".","value":"v"}`, 400, "not a valid secret name"},
		{"too long", "POST", `{"name":"` + strings.Repeat("a.", 127) + `a","value":"v"}`, 400, "not a valid secret name"},
		{"no value", "POST", `{"name":"s"}`, 400, "secret s has no value: set value or rawValue"},
		{"empty values", "POST", `{"name":"s","value":"","rawValue":""}`, 400, "has no value"},
		{"bad base64", "POST", `{"name":"s","rawValue":"not base64!"}`, 400, "invalid JSON body"},
		{"value too large", "POST", `{"name":"s","value":"` + big + `"}`, 413, "value larger than 524288 bytes"},
		{"raw too large", "POST", `{"name":"s","rawValue":"` + base64.StdEncoding.EncodeToString([]byte(big)) + `"}`, 413, "value larger than"},
		{"body too large", "POST", `{"name":"s","value":"` + strings.Repeat("x", maxSecretBodyBytes) + `"}`, 413, "request body larger than"},
		{"update no value", "PUT", `{"name":"api-key"}`, 400, "has no value"},
		{"update bad name", "PUT", `{"name":"A","value":"v"}`, 400, "not a valid secret name"},
		{"update too large", "PUT", `{"name":"api-key","value":"` + big + `"}`, 413, "value larger than"},
		{"delete no name", "DELETE", `{"namespace":"openfaas-fn"}`, 400, "name is required"},
		{"delete bad JSON", "DELETE", `{"name":api-key}`, 400, "invalid JSON body"},
		{"delete bad name", "DELETE", `{"name":"../api-key"}`, 404, "unable to find secret: ../api-key"},
		{"patch", "PATCH", `{"name":"api-key","value":"v"}`, 405, "method PATCH not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			before := f.secretsSnapshot(t)
			w := f.do(t, tt.method, "/system/secrets", tt.body)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.msg) {
				t.Errorf("got %d %q, want %d containing %q", w.Code, w.Body.String(), tt.code, tt.msg)
			}
			if after := f.secretsSnapshot(t); after != before {
				t.Errorf("store changed:\n before %s\n after  %s", before, after)
			}
			if v, _ := f.secretValue(t, "", "api-key"); v != "test-value" {
				t.Errorf("api-key changed")
			}
		})
	}
}

// TestSecretAuth: every secret route needs credentials.
func TestSecretAuth(t *testing.T) {
	f := newFixture(t, nil)
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		w := f.send(t, m, "/system/secrets", `{"name":"api-key","value":"v"}`, nil)
		if w.Code != 401 {
			t.Errorf("%s without credentials: %d, want 401", m, w.Code)
		}
	}
	if v, _ := f.secretValue(t, "", "api-key"); v != "test-value" {
		t.Error("an unauthenticated request changed a secret")
	}
}

// TestSecretValuesNeverLeak: no response and no log line carries a value,
// whatever happened to the request.
func TestSecretValuesNeverLeak(t *testing.T) {
	const value = "s3cr3t-value-7d1e"
	raw := base64.StdEncoding.EncodeToString([]byte(value + "-raw"))
	f := newFixture(t, nil)
	reqs := []struct{ method, body string }{
		{"POST", `{"name":"leak","value":"` + value + `"}`},
		{"POST", `{"name":"leak","value":"` + value + `"}`}, // 409
		{"PUT", `{"name":"leak","value":"` + value + `-2","rawValue":"` + raw + `"}`},
		{"PUT", `{"name":"absent","value":"` + value + `"}`}, // 404
		{"POST", `{"name":"Bad","value":"` + value + `"}`},   // 400
		{"GET", ``},
		{"DELETE", `{"name":"leak"}`},
	}
	for _, r := range reqs {
		w := f.do(t, r.method, "/system/secrets", r.body)
		if strings.Contains(w.Body.String(), value) {
			t.Errorf("%s %s: response leaks the value: %q", r.method, r.body, w.Body.String())
		}
	}
	if len(f.logs.AllEntries()) == 0 {
		t.Fatal("nothing logged; the check below would pass vacuously")
	}
	for _, e := range f.logs.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, value) || strings.Contains(line, "7d1e") {
			t.Errorf("log line leaks the value: %s", line)
		}
	}
}

// TestSecretWritesLogged: one line per accepted write, naming the secret and
// its revision; a removal of a secret still in use is a warning that names
// the functions.
func TestSecretWritesLogged(t *testing.T) {
	f := newFixture(t, nil)
	f.deploy(t, helloBody) // lists api-key
	if w := f.do(t, "PUT", "/system/secrets", `{"name":"api-key","value":"new"}`); w.Code != 202 {
		t.Fatalf("update: %d", w.Code)
	}
	e := f.logs.LastEntry()
	if e.Message != "secret updated" || e.Data["secret"] != "api-key" || e.Data["namespace"] != "openfaas-fn" || e.Data["revision"] == nil {
		t.Errorf("update logged %q %v", e.Message, e.Data)
	}
	if w := f.do(t, "DELETE", "/system/secrets", `{"name":"api-key"}`); w.Code != 202 {
		t.Fatalf("delete: %d", w.Code)
	}
	e = f.logs.LastEntry()
	if e.Level.String() != "warning" || fmt.Sprint(e.Data["functions"]) != "[hello]" {
		t.Errorf("delete of a used secret logged %s %q %v, want a warning naming hello", e.Level, e.Message, e.Data)
	}
}

// TestDeployNeedsSecrets: a deployment listing a secret its namespace does
// not hold is a 400 with faasd's message, for POST and PUT, and nothing is
// stored; with the secret it deploys.
func TestDeployNeedsSecrets(t *testing.T) {
	f := newFixture(t, nil)
	f.createNamespace(t, "dev")
	f.deploy(t, `{"service":"fn","image":"img","secrets":["api-key"]}`)
	before := f.snapshot(t)
	reqs := []struct{ method, body, missing string }{
		{"POST", `{"service":"new","image":"img","secrets":["api-key","nope"]}`, "nope"},
		{"PUT", `{"service":"fn","image":"img:2","secrets":["api-key","nope"]}`, "nope"},
		// Secrets are per namespace: dev has no api-key.
		{"POST", `{"service":"fn","namespace":"dev","image":"img","secrets":["api-key"]}`, "api-key"},
	}
	for _, r := range reqs {
		w := f.do(t, r.method, "/system/functions", r.body)
		if w.Code != 400 || w.Body.String() != "unable to find secret: "+r.missing+"\n" {
			t.Errorf("%s %s: got %d %q, want 400 unable to find secret: %s", r.method, r.body, w.Code, w.Body.String(), r.missing)
		}
	}
	if after := f.snapshot(t); after != before {
		t.Errorf("store changed:\n before %s\n after  %s", before, after)
	}
	f.createSecret(t, "dev", "api-key")
	f.deploy(t, `{"service":"fn","namespace":"dev","image":"img","secrets":["api-key"]}`)
}

// TestSecretStoreFailure: a broken store is a 500 without internals.
func TestSecretStoreFailure(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Store = brokenStore{} })
	for _, r := range []struct{ method, body string }{
		{"GET", ""},
		{"POST", `{"name":"s","value":"v"}`},
		{"PUT", `{"name":"s","value":"v"}`},
		{"DELETE", `{"name":"s"}`},
	} {
		w := f.do(t, r.method, "/system/secrets", r.body)
		if w.Code != http.StatusInternalServerError || w.Body.String() != "internal error\n" {
			t.Errorf("%s: got %d %q, want 500 internal error", r.method, w.Code, w.Body.String())
		}
	}
}
