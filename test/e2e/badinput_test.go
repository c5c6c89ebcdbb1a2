package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// badCase is one request of the bad-input catalogue and the refusal it must
// get.
type badCase struct {
	name, method, path string
	body               string
	want               int
}

// badInputCases is the catalogue. img is an image that exists, so that a
// deploy is refused for the one thing each case gets wrong. The daemon has
// the function keep, the secret sec and the namespace dev (holding the
// secret dev-sec) when they run.
func badInputCases(img string) []badCase {
	deploy := func(fields string) string {
		return `{"service":"bad","image":"` + img + `"` + fields + `}`
	}
	named := func(name string) string { return `{"service":` + jsonQuote(name) + `,"image":"` + img + `"}` }
	huge := strings.Repeat("x", 1<<20+1)
	return []badCase{
		// Deploy: malformed JSON and wrong types.
		{"deploy: truncated JSON", "POST", "/system/functions", `{"service":`, 400},
		{"deploy: a JSON array", "POST", "/system/functions", `[]`, 400},
		{"deploy: empty body", "POST", "/system/functions", ``, 400},
		{"deploy: data after the object", "POST", "/system/functions", deploy(``) + ` {}`, 400},
		{"deploy: service is a number", "POST", "/system/functions", `{"service":1,"image":"` + img + `"}`, 400},
		{"deploy: envVars is a list", "POST", "/system/functions", deploy(`,"envVars":["A=1"]`), 400},
		{"deploy: labels is a string", "POST", "/system/functions", deploy(`,"labels":"team=x"`), 400},
		{"deploy: readOnlyRootFilesystem is a string", "POST", "/system/functions", deploy(`,"readOnlyRootFilesystem":"yes"`), 400},
		{"deploy: body over 1 MiB", "POST", "/system/functions", deploy(`,"envVars":{"A":"` + huge + `"}`), 413},
		// Deploy: names.
		{"deploy: no name", "POST", "/system/functions", named(""), 400},
		{"deploy: uppercase name", "POST", "/system/functions", named("Bad"), 400},
		{"deploy: dot in the name", "POST", "/system/functions", named("a.b"), 400},
		{"deploy: name ../x", "POST", "/system/functions", named("../x"), 400},
		{"deploy: name %2e%2e", "POST", "/system/functions", named("%2e%2e"), 400},
		{"deploy: name a/b", "POST", "/system/functions", named("a/b"), 400},
		{"deploy: name with NUL", "POST", "/system/functions", named("a\x00b"), 400},
		{"deploy: name of 64 characters", "POST", "/system/functions", named(strings.Repeat("a", 64)), 400},
		{"deploy: no image", "POST", "/system/functions", `{"service":"bad"}`, 400},
		{"deploy: image with a space", "POST", "/system/functions", `{"service":"bad","image":"a b"}`, 400},
		{"deploy: unknown namespace", "POST", "/system/functions", deploy(`,"namespace":"nope"`), 400},
		{"deploy: namespace ../dev", "POST", "/system/functions", deploy(`,"namespace":"../dev"`), 400},
		{"deploy: env name with =", "POST", "/system/functions", deploy(`,"envVars":{"A=B":"1"}`), 400},
		// Deploy: quantities, timeouts, labels, secrets.
		{"deploy: memory limit lots", "POST", "/system/functions", deploy(`,"limits":{"memory":"lots"}`), 400},
		{"deploy: negative cpu request", "POST", "/system/functions", deploy(`,"requests":{"cpu":"-1"}`), 400},
		{"deploy: memory limit 1Xi", "POST", "/system/functions", deploy(`,"limits":{"memory":"1Xi"}`), 400},
		{"deploy: exec_timeout soon", "POST", "/system/functions", deploy(`,"envVars":{"exec_timeout":"soon"}`), 400},
		{"deploy: negative read_timeout", "POST", "/system/functions", deploy(`,"envVars":{"read_timeout":"-5s"}`), 400},
		{"deploy: write_timeout that overflows", "POST", "/system/functions", deploy(`,"envVars":{"write_timeout":"9223372037"}`), 400},
		{"deploy: reserved label", "POST", "/system/functions", deploy(`,"labels":{"io.dockerfaas.instance":"x"}`), 400},
		{"deploy: scale.min above scale.max", "POST", "/system/functions", deploy(`,"labels":{"com.openfaas.scale.min":"3","com.openfaas.scale.max":"2"}`), 400},
		{"deploy: scale.max above MAX_REPLICAS", "POST", "/system/functions", deploy(`,"labels":{"com.openfaas.scale.max":"1000"}`), 400},
		{"deploy: negative scale.min", "POST", "/system/functions", deploy(`,"labels":{"com.openfaas.scale.min":"-1"}`), 400},
		{"deploy: unknown secret", "POST", "/system/functions", deploy(`,"secrets":["nope"]`), 400},
		{"deploy: mode batch", "POST", "/system/functions", deploy(`,"annotations":{"io.dockerfaas.mode":"batch"}`), 400},
		{"deploy: job concurrency 0", "POST", "/system/functions", deploy(`,"annotations":{"io.dockerfaas.mode":"job","io.dockerfaas.job.concurrency":"0"}`), 400},
		{"deploy: job stream not a boolean", "POST", "/system/functions", deploy(`,"annotations":{"io.dockerfaas.mode":"job","io.dockerfaas.job.stream":"yes"}`), 400},
		{"deploy: secret ../sec", "POST", "/system/functions", deploy(`,"secrets":["../sec"]`), 400},
		{"deploy: existing function", "POST", "/system/functions", named("keep"), 409},
		// Update and delete.
		{"update: unknown function", "PUT", "/system/functions", named("ghost"), 404},
		{"update: truncated JSON", "PUT", "/system/functions", `{"service":"keep","image":`, 400},
		{"update: invalid name", "PUT", "/system/functions", named("../keep"), 400},
		{"update: bad quantity", "PUT", "/system/functions", `{"service":"keep","image":"` + img + `","limits":{"cpu":"fast"}}`, 400},
		{"delete: unknown function", "DELETE", "/system/functions", `{"functionName":"ghost"}`, 404},
		{"delete: name ../keep", "DELETE", "/system/functions", `{"functionName":"../keep"}`, 404},
		{"delete: name keep.openfaas-fn", "DELETE", "/system/functions", `{"functionName":"keep.openfaas-fn"}`, 404},
		{"delete: truncated JSON", "DELETE", "/system/functions", `{"functionName":`, 400},
		{"delete: no name", "DELETE", "/system/functions", `{}`, 400},
		{"delete: unknown namespace", "DELETE", "/system/functions", `{"functionName":"keep","namespace":"nope"}`, 400},
		// Scale.
		{"scale: negative replicas", "POST", "/system/scale-function/keep", `{"serviceName":"keep","replicas":-1}`, 400},
		{"scale: replicas above MAX_REPLICAS", "POST", "/system/scale-function/keep", `{"serviceName":"keep","replicas":1000000}`, 400},
		{"scale: replicas beyond uint64", "POST", "/system/scale-function/keep", `{"replicas":1e30}`, 400},
		{"scale: replicas is a string", "POST", "/system/scale-function/keep", `{"replicas":"2"}`, 400},
		{"scale: serviceName of another function", "POST", "/system/scale-function/keep", `{"serviceName":"other","replicas":2}`, 400},
		{"scale: unknown function", "POST", "/system/scale-function/ghost", `{"replicas":2}`, 404},
		{"scale: name %2e%2e", "POST", "/system/scale-function/%2e%2e", `{"replicas":2}`, 404},
		{"scale: unknown namespace", "POST", "/system/scale-function/keep?namespace=nope", `{"replicas":2}`, 400},
		{"scale: body over 1 MiB", "POST", "/system/scale-function/keep", `{"replicas":2,"x":"` + huge + `"}`, 413},
		// Reads with bad names.
		{"describe: name ..%2Fsecrets", "GET", "/system/function/..%2Fsecrets", ``, 404},
		{"describe: unknown namespace", "GET", "/system/function/keep?namespace=nope", ``, 400},
		{"list: namespace ../dev", "GET", "/system/functions?namespace=..%2Fdev", ``, 400},
		// Secrets.
		{"secret: name ../x", "POST", "/system/secrets", `{"name":"../x","value":"v"}`, 400},
		{"secret: name %2e%2e", "POST", "/system/secrets", `{"name":"%2e%2e","value":"v"}`, 400},
		{"secret: name a/b", "POST", "/system/secrets", `{"name":"a/b","value":"v"}`, 400},
		{"secret: name with NUL", "POST", "/system/secrets", `{"name":"a\u0000b","value":"v"}`, 400},
		{"secret: name ..", "POST", "/system/secrets", `{"name":"..","value":"v"}`, 400},
		{"secret: no value", "POST", "/system/secrets", `{"name":"empty"}`, 400},
		{"secret: value is a number", "POST", "/system/secrets", `{"name":"num","value":1}`, 400},
		{"secret: existing", "POST", "/system/secrets", `{"name":"sec","value":"v"}`, 409},
		{"secret: value over 512 KiB", "POST", "/system/secrets", `{"name":"big","value":"` + strings.Repeat("x", 512<<10+1) + `"}`, 413},
		{"secret: unknown namespace", "POST", "/system/secrets", `{"name":"x","value":"v","namespace":"nope"}`, 400},
		{"secret: update of a missing one", "PUT", "/system/secrets", `{"name":"ghost","value":"v"}`, 404},
		{"secret: update named ../sec", "PUT", "/system/secrets", `{"name":"../sec","value":"v"}`, 400},
		{"secret: delete of a missing one", "DELETE", "/system/secrets", `{"name":"ghost"}`, 404},
		{"secret: delete named ../sec", "DELETE", "/system/secrets", `{"name":"../sec"}`, 404},
		{"secret: list of namespace ..", "GET", "/system/secrets?namespace=..", ``, 400},
		// Namespaces.
		{"namespace: no openfaas label", "POST", "/system/namespace/", `{"name":"staging"}`, 400},
		{"namespace: name ../x", "POST", "/system/namespace/", `{"name":"../x","labels":{"openfaas":"1"}}`, 400},
		{"namespace: existing", "POST", "/system/namespace/", `{"name":"dev","labels":{"openfaas":"1"}}`, 409},
		{"namespace: delete the default", "DELETE", "/system/namespace/openfaas-fn", `{"name":"openfaas-fn","labels":{"openfaas":"1"}}`, 400},
		{"namespace: delete one holding a secret", "DELETE", "/system/namespace/dev", `{"name":"dev","labels":{"openfaas":"1"}}`, 409},
		{"namespace: update with another name", "PUT", "/system/namespace/dev", `{"name":"prod","labels":{"openfaas":"1"}}`, 400},
		{"namespace: get unknown", "GET", "/system/namespace/nope", ``, 404},
		{"namespace: get %2e%2e", "GET", "/system/namespace/%2e%2e", ``, 404},
		// Logs.
		{"logs: no name", "GET", "/system/logs", ``, 400},
		{"logs: tail x", "GET", "/system/logs?name=keep&tail=x", ``, 422},
		{"logs: since yesterday", "GET", "/system/logs?name=keep&since=yesterday", ``, 422},
		{"logs: name ../keep", "GET", "/system/logs?name=..%2Fkeep", ``, 404},
		{"logs: unknown function", "GET", "/system/logs?name=ghost", ``, 404},
		{"logs: unknown namespace", "GET", "/system/logs?name=keep&namespace=nope", ``, 400},
		// Wrong methods (405 with Allow) and unknown routes.
		{"method: PATCH functions", "PATCH", "/system/functions", `{}`, 405},
		{"method: POST info", "POST", "/system/info", `{}`, 405},
		{"method: DELETE one function", "DELETE", "/system/function/keep", ``, 405},
		{"method: GET scale", "GET", "/system/scale-function/keep", ``, 405},
		{"method: POST namespaces", "POST", "/system/namespaces", `{}`, 405},
		{"method: PUT healthz", "PUT", "/healthz", ``, 405},
		{"route: /system/nope", "GET", "/system/nope", ``, 404},
		{"route: /nope", "GET", "/nope", ``, 404},
		{"route: /system/functions/keep", "GET", "/system/functions/keep", ``, 404},
		// Invocation of names that cannot exist.
		{"invoke: unknown function", "GET", "/function/ghost", ``, 404},
		{"invoke: name ..%2Fsystem", "GET", "/function/..%2Fsystem%2Ffunctions", ``, 404},
		{"invoke: unknown namespace", "GET", "/function/keep.nope", ``, 404},
	}
}

// badRequest is a badCase with request headers of its own (the
// async cases), sent on top of Content-Type.
type badRequest struct {
	badCase
	headers map[string]string
}

// asyncBadInputCases are the refusals of docs/async.md. The daemon runs with
// ASYNC_CALLBACK_HOSTS=hooks.example.com and the default ASYNC_MAX_BODY_BYTES
// (1 MiB). None may store a call.
func asyncBadInputCases() []badRequest {
	huge := strings.Repeat("x", 1<<20+1)
	cb := func(v string) map[string]string { return map[string]string{"X-Callback-Url": v} }
	id := func(v string) map[string]string { return map[string]string{"X-Call-Id": v} }
	return []badRequest{
		// Methods: POST, PUT and PATCH accept; DELETE cancels a call id,
		// which has no slash: with a path it names no call (404).
		{badCase{"async: GET", "GET", "/async-function/keep", ``, 405}, nil},
		{badCase{"async: HEAD", "HEAD", "/async-function/keep", ``, 405}, nil},
		{badCase{"async: OPTIONS", "OPTIONS", "/async-function/keep/a", ``, 405}, nil},
		{badCase{"async: DELETE with a path", "DELETE", "/async-function/keep/x", ``, 404}, nil},
		{badCase{"async: POST the records", "POST", "/system/async", `{}`, 405}, nil},
		{badCase{"async: PUT a record", "PUT", "/system/async/x", `{}`, 405}, nil},
		// X-Callback-Url: absolute http(s), a host, allowed by ASYNC_CALLBACK_HOSTS.
		{badCase{"async: callback ftp://x", "POST", "/async-function/keep", `x`, 400}, cb("ftp://x")},
		{badCase{"async: callback not a URL", "POST", "/async-function/keep", `x`, 400}, cb("not a url")},
		{badCase{"async: callback /relative", "POST", "/async-function/keep", `x`, 400}, cb("/relative")},
		{badCase{"async: callback http:// without a host", "POST", "/async-function/keep", `x`, 400}, cb("http://")},
		{badCase{"async: callback to the metadata address", "POST", "/async-function/keep", `x`, 400}, cb("http://169.254.169.254/latest/meta-data/")},
		{badCase{"async: callback to a host not allowed", "POST", "/async-function/keep", `x`, 400}, cb("https://hooks.example.net/done")},
		// X-Call-Id: 1–128 of A-Z a-z 0-9 . _ : -
		{badCase{"async: X-Call-Id with a space", "POST", "/async-function/keep", `x`, 400}, id("my id")},
		{badCase{"async: X-Call-Id with a slash", "POST", "/async-function/keep", `x`, 400}, id("a/b")},
		{badCase{"async: X-Call-Id of 129 characters", "PUT", "/async-function/keep", `x`, 400}, id(strings.Repeat("a", 129))},
		{badCase{"async: X-Call-Id of 200 characters", "POST", "/async-function/keep", `x`, 400}, id(strings.Repeat("b", 200))},
		// Body, names.
		{badCase{"async: body over ASYNC_MAX_BODY_BYTES", "POST", "/async-function/keep", huge, 413}, nil},
		{badCase{"async: unknown function", "POST", "/async-function/ghost", `x`, 404}, nil},
		{badCase{"async: unknown function.openfaas-fn", "PATCH", "/async-function/ghost.openfaas-fn", `x`, 404}, nil},
		{badCase{"async: unknown namespace", "POST", "/async-function/keep.nope", `x`, 404}, nil},
		{badCase{"async: function name with a space", "POST", "/async-function/a%20b", `x`, 400}, nil},
		{badCase{"async: function name ..%2Fsystem", "POST", "/async-function/..%2Fsystem%2Ffunctions", `x`, 400}, nil},
		{badCase{"async: empty namespace", "POST", "/async-function/keep.", `x`, 400}, nil},
		// Records and cancel of ids that do not exist.
		{badCase{"async: record of an unknown id", "GET", "/system/async/unknown", ``, 404}, nil},
		{badCase{"async: cancel of an unknown id", "DELETE", "/async-function/unknown-id", ``, 404}, nil},
		{badCase{"async: cancel of a function's name", "DELETE", "/async-function/keep", ``, 404}, nil},
	}
}

// jsonQuote renders s as a JSON string.
func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// apiState is what the API reports of desired state, as JSON per GET.
type apiState map[string]string

// apiSnapshot reads every listing of stored state: functions (without
// observed fields) and secrets of both namespaces, the namespaces, and dev.
func (d *daemon) apiSnapshot() (apiState, error) {
	s := apiState{}
	for _, path := range []string{"/system/functions", "/system/functions?namespace=dev"} {
		res, err := d.request(http.MethodGet, path, nil, nil, authBasic)
		if err != nil {
			return nil, err
		}
		var list []types.FunctionStatus
		if res.Status != http.StatusOK || json.Unmarshal(res.Body, &list) != nil {
			return nil, fmt.Errorf("GET %s: %s", path, res)
		}
		s[path] = jsonString(normalizeList(list))
	}
	for _, path := range []string{"/system/secrets", "/system/secrets?namespace=dev", "/system/namespaces", "/system/namespace/dev"} {
		res, err := d.request(http.MethodGet, path, nil, nil, authBasic)
		if err != nil {
			return nil, err
		}
		if res.Status != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, res)
		}
		s[path] = string(res.Body)
	}
	return s, nil
}

// fileSHA256 hashes the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestBadInputCatalogue sends the catalogue of bad requests to the real
// daemon. Each must get its 4xx with a non-empty plain-text message (a 405
// also names the allowed methods), and none may change anything stored:
// every listing of desired state reads the same before and after, and the
// bbolt file on disk is byte-identical (reads never write it, and a refused
// write is rolled back before it touches the file).
func TestBadInputCatalogue(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("ASYNC_CALLBACK_HOSTS", "hooks.example.com"), withEnv("IMAGE_UPLOAD_MAX", "1Mi"))
	img := fnImage(t, fnHostname)
	dbPath := filepath.Join(d.stateDir, "state.db")
	d.deploy(simpleSpec("keep", img, map[string]string{"K": "v"}, nil))
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/system/secrets", `{"name":"sec","value":"s3cr3t"}`},
		{"POST", "/system/namespace/", `{"name":"dev","labels":{"openfaas":"1"}}`},
		{"POST", "/system/secrets", `{"name":"dev-sec","value":"s3cr3t","namespace":"dev"}`},
	} {
		if res := d.invoke(r.method, r.path, []byte(r.body), nil); res.Status/100 != 2 {
			t.Fatalf("%s %s: %s", r.method, r.path, res)
		}
	}
	d.waitReady("keep", defaultNamespace, 1)
	ids, err := d.runningIDs("keep", defaultNamespace)
	if err != nil || len(ids) != 1 {
		t.Fatalf("running containers of keep: %v %v", ids, err)
	}

	before, err := d.apiSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	// The file must be still while nothing is written: check over a few
	// resync rounds (RESYNC_INTERVAL=5s) before blaming a request for it.
	hash := fileSHA256(t, dbPath)
	time.Sleep(6 * time.Second)
	if h := fileSHA256(t, dbPath); h != hash {
		t.Fatalf("the state file changed while the daemon was idle (%s → %s)", hash[:12], h[:12])
	}

	var cases []badRequest
	for _, c := range badInputCases(img) {
		cases = append(cases, badRequest{badCase: c})
	}
	cases = append(cases, asyncBadInputCases()...)
	cases = append(cases, imageBadInputCases()...)
	counts := map[int]int{}
	for _, c := range cases {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		headers := map[string]string{"Content-Type": "application/json"}
		maps.Copy(headers, c.headers)
		res, err := d.request(c.method, c.path, body, headers, authBasic)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		counts[res.Status]++
		msg := strings.TrimSpace(string(res.Body))
		switch {
		case res.Status != c.want:
			t.Errorf("%s: %s %s answered %s, want %d", c.name, c.method, c.path, res, c.want)
		case !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain"):
			t.Errorf("%s: Content-Type %q, want text/plain", c.name, res.Header.Get("Content-Type"))
		case msg == "" && c.method != http.MethodHead: // a HEAD answer has no body
			t.Errorf("%s: %d without a message", c.name, res.Status)
		case c.want == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "":
			t.Errorf("%s: 405 without an Allow header", c.name)
		}
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		t.Logf("%-45s %d %s", c.name, res.Status, msg)
		if h := fileSHA256(t, dbPath); h != hash {
			t.Errorf("%s changed the state file (%s → %s)", c.name, hash[:12], h[:12])
			hash = h
		}
	}
	after, err := d.apiSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		for k := range before {
			if before[k] != after[k] {
				t.Errorf("GET %s changed:\nbefore %s\nafter  %s", k, before[k], after[k])
			}
		}
	}
	t.Logf("%d bad requests, answers by status %v", len(cases), counts)

	// Nothing was created or replaced in Docker either.
	cs, err := d.docker.ContainerList(t.Context(), containerListAll(labelInstance+"="+d.instance))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != ids[0] {
		t.Errorf("containers of the instance after the bad input: %s, want only %s", describeContainers(cs), short(ids[0]))
	}
}
