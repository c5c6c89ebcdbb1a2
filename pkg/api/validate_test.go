package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestBadInput sends requests that must be refused and checks the code, that
// the message names the problem, and that the store is byte-identical after.
func TestBadInput(t *testing.T) {
	huge := `"` + strings.Repeat("x", maxBodyBytes) + `"`
	name64 := strings.Repeat("a", 64)
	// deploy cases run as both POST and PUT; the others give their own.
	deploy := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"bad JSON", `{"service":`, 400, "invalid JSON body"},
		{"array body", `[` + helloBody + `]`, 400, "expected a JSON object"},
		{"string body", `"hello"`, 400, "expected a JSON object"},
		{"null body", `null`, 400, "expected a JSON object"},
		{"empty body", ``, 400, "request body is empty"},
		{"trailing garbage", helloBody + `{}`, 400, "unexpected data after"},
		{"wrong field type", with(t, "envVars", `["A=1"]`), 400, "invalid JSON body: json: cannot unmarshal array"},
		{"missing service", with(t, "service", ""), 400, "service is required"},
		{"missing image", with(t, "image", ""), 400, "image is required"},
		{"uppercase name", with(t, "service", `"Hello"`), 400, "service Hello is not a valid name"},
		{"name of 64 chars", with(t, "service", `"`+name64+`"`), 400, "is not a valid name"},
		{"name with slash", with(t, "service", `"a/b"`), 400, "is not a valid name"},
		{"name dotdot", with(t, "service", `".."`), 400, "is not a valid name"},
		{"name with dot", with(t, "service", `"hello.dev"`), 400, "is not a valid name"},
		{"name leading dash", with(t, "service", `"-hello"`), 400, "is not a valid name"},
		{"name with space", with(t, "service", `"he llo"`), 400, `service "he llo" is not a valid name`},
		{"unknown namespace", with(t, "namespace", `"dev"`), 400, "namespace dev is not valid"},
		{"env key with =", with(t, "envVars", `{"A=B":"1"}`), 400, "envVars: invalid name"},
		{"empty env key", with(t, "envVars", `{"":"1"}`), 400, "envVars: invalid name"},
		{"env key with NUL", with(t, "envVars", `{"A\u0000":"1"}`), 400, "envVars: invalid name"},
		{"env value with NUL", with(t, "envVars", `{"A":"x\u0000"}`), 400, "envVars: value of A contains NUL"},
		{"scale.min > max", with(t, "labels", `{"com.openfaas.scale.min":"5","com.openfaas.scale.max":"2"}`), 400, "com.openfaas.scale.min (5) must not exceed com.openfaas.scale.max (2)"},
		{"negative scale.min", with(t, "labels", `{"com.openfaas.scale.min":"-1"}`), 400, "com.openfaas.scale.min must be a non-negative integer"},
		{"non-numeric scale.max", with(t, "labels", `{"com.openfaas.scale.max":"many"}`), 400, "com.openfaas.scale.max must be a non-negative integer"},
		{"scale.max above limit", with(t, "labels", `{"com.openfaas.scale.max":"101"}`), 400, "must not exceed 100"},
		{"scale.min above limit", with(t, "labels", `{"com.openfaas.scale.min":"101"}`), 400, "must not exceed"},
		// Every scale label, read by pkg/scaling as OpenFaaS defines it;
		// each message names the label.
		{"scale.max 0 below default min", with(t, "labels", `{"com.openfaas.scale.max":"0"}`), 400, "com.openfaas.scale.min (1) must not exceed com.openfaas.scale.max (0)"},
		{"scale.factor above 100", with(t, "labels", `{"com.openfaas.scale.factor":"101"}`), 400, "label com.openfaas.scale.factor must be a percentage from 0 to 100"},
		{"scale.factor negative", with(t, "labels", `{"com.openfaas.scale.factor":"-10"}`), 400, "label com.openfaas.scale.factor must be a non-negative integer"},
		{"scale.zero maybe", with(t, "labels", `{"com.openfaas.scale.zero":"maybe"}`), 400, `label com.openfaas.scale.zero must be "true" or "false", got "maybe"`},
		{"scale.zero-duration soon", with(t, "labels", `{"com.openfaas.scale.zero-duration":"soon"}`), 400, `label com.openfaas.scale.zero-duration must be a positive duration such as 30s, got "soon"`},
		{"scale.zero-duration negative", with(t, "labels", `{"com.openfaas.scale.zero-duration":"-1s"}`), 400, `label com.openfaas.scale.zero-duration must be a positive duration such as 30s, got "-1s"`},
		{"scale.zero-duration zero", with(t, "labels", `{"com.openfaas.scale.zero-duration":"0s"}`), 400, "label com.openfaas.scale.zero-duration must be a positive duration"},
		{"scale.zero-duration without unit", with(t, "labels", `{"com.openfaas.scale.zero-duration":"15"}`), 400, "label com.openfaas.scale.zero-duration must be a positive duration"},
		{"scale.type memory", with(t, "labels", `{"com.openfaas.scale.type":"memory"}`), 400, `label com.openfaas.scale.type must be one of rps, capacity, cpu, queue, got "memory"`},
		{"scale.type upper case", with(t, "labels", `{"com.openfaas.scale.type":"RPS"}`), 400, "label com.openfaas.scale.type must be one of"},
		{"scale.target 0", with(t, "labels", `{"com.openfaas.scale.target":"0"}`), 400, `label com.openfaas.scale.target must be a number above 0`},
		{"scale.target abc", with(t, "labels", `{"com.openfaas.scale.target":"abc"}`), 400, `label com.openfaas.scale.target must be a number above 0`},
		{"scale.target NaN", with(t, "labels", `{"com.openfaas.scale.target":"NaN"}`), 400, `label com.openfaas.scale.target must be a number above 0`},
		{"scale.target-proportion 1.5", with(t, "labels", `{"com.openfaas.scale.target-proportion":"1.5"}`), 400, "label com.openfaas.scale.target-proportion must be a number above 0 and at most 1"},
		{"scale.target-proportion 0", with(t, "labels", `{"com.openfaas.scale.target-proportion":"0"}`), 400, "label com.openfaas.scale.target-proportion must be a number above 0 and at most 1"},
		{"scale.down.window 10m", with(t, "labels", `{"com.openfaas.scale.down.window":"10m"}`), 400, "label com.openfaas.scale.down.window must be a positive duration such as 30s of at most 5m0s"},
		{"scale.down.window -30s", with(t, "labels", `{"com.openfaas.scale.down.window":"-30s"}`), 400, "label com.openfaas.scale.down.window must be a positive duration"},
		{"two bad scale labels", with(t, "labels", `{"com.openfaas.scale.min":"x","com.openfaas.scale.target":"abc"}`), 400, "label com.openfaas.scale.min must be a non-negative integer, got \"x\"\ninvalid scaling label: label com.openfaas.scale.target"},
		{"huge scale label value cut", with(t, "labels", `{"com.openfaas.scale.type":"`+strings.Repeat("m", 500)+`"}`), 400, "label com.openfaas.scale.type must be one of"},
		{"empty label key", with(t, "labels", `{"":"x"}`), 400, "labels: keys must not be empty"},
		{"empty annotation key", with(t, "annotations", `{"":"x"}`), 400, "annotations: keys must not be empty"},
		{"image with space", with(t, "image", `"docker.io/x y:1"`), 400, "must not contain whitespace"},
		{"image with newline", with(t, "image", `"x:1\n"`), 400, "must not contain whitespace"},
		{"secret traversal", with(t, "secrets", `["../etc"]`), 400, "secrets: invalid name"},
		{"bad exec timeout", with(t, "envVars", `{"exec_timeout":"soon"}`), 400, `envVars exec_timeout: timeout "soon"`},
		{"negative read timeout", with(t, "envVars", `{"read_timeout":"-3"}`), 400, `envVars read_timeout: timeout "-3" is negative`},
		{"bad memory limit", with(t, "limits", `{"memory":"lots"}`), 400, "limits.memory: lots is not a quantity"},
		{"negative cpu limit", with(t, "limits", `{"cpu":"-1"}`), 400, "limits.cpu: -1 is not a quantity"},
		{"bad memory request", with(t, "requests", `{"memory":"12Xi"}`), 400, "requests.memory: 12Xi is not a quantity"},
		{"bad cpu request", with(t, "requests", `{"cpu":"half"}`), 400, "requests.cpu: half is not a quantity"},
		{"reserved label", with(t, "labels", `{"io.dockerfaas.managed":"true"}`), 400, "labels: io.dockerfaas.managed is reserved"},
		{"empty secret", with(t, "secrets", `[""]`), 400, "secrets: invalid name"},
		{"oversize body", with(t, "envProcess", huge), 413, "request body larger than"},
		{"bad mode", with(t, "annotations", `{"io.dockerfaas.mode":"batch"}`), 400, `annotations: io.dockerfaas.mode "batch": want replicas or job`},
		{"job concurrency 0", with(t, "annotations", `{"io.dockerfaas.mode":"job","io.dockerfaas.job.concurrency":"0"}`), 400, `io.dockerfaas.job.concurrency "0": want an integer from 1 to 10000`},
		{"job concurrency not a number", with(t, "annotations", `{"io.dockerfaas.job.concurrency":"many"}`), 400, `io.dockerfaas.job.concurrency "many"`},
		{"job stream not a boolean", with(t, "annotations", `{"io.dockerfaas.mode":"job","io.dockerfaas.job.stream":"yes"}`), 400, `io.dockerfaas.job.stream "yes": want true or false`},
		{"job mode on a runtime without it", with(t, "annotations", `{"io.dockerfaas.mode":"job"}`), 501, "job mode needs RUNTIME=docker"},
		{"bad isolation", with(t, "annotations", `{"io.dockerfaas.isolation":"per-call"}`), 400, `annotations: io.dockerfaas.isolation "per-call": want per-request or shared`},
		{"pool size 0", with(t, "annotations", `{"io.dockerfaas.isolation":"per-request","io.dockerfaas.pool.size":"0"}`), 400, `io.dockerfaas.pool.size "0": want an integer from 1 to 64`},
		{"socket without isolation", with(t, "annotations", `{"io.dockerfaas.protocol":"socket"}`), 400, "apply only with io.dockerfaas.isolation: per-request"},
		{"isolated job", with(t, "annotations", `{"io.dockerfaas.mode":"job","io.dockerfaas.isolation":"per-request"}`), 400, "does not combine with io.dockerfaas.mode: job"},
		{"isolation on a runtime without it", with(t, "annotations", `{"io.dockerfaas.isolation":"per-request"}`), 501, "per-request isolation needs RUNTIME=docker"},
	}
	type request struct {
		name, method, target, body string
		code                       int
		msg                        string
	}
	var reqs []request
	for _, d := range deploy {
		for _, m := range []string{"POST", "PUT"} {
			reqs = append(reqs, request{d.name, m, "/system/functions", d.body, d.code, d.msg})
		}
	}
	reqs = append(reqs,
		request{"negative replicas", "POST", "/system/scale-function/hello", `{"replicas":-1}`, 400, "cannot unmarshal number -1"},
		request{"float replicas", "POST", "/system/scale-function/hello", `{"replicas":1.5}`, 400, "invalid JSON body"},
		request{"string replicas", "POST", "/system/scale-function/hello", `{"replicas":"3"}`, 400, "invalid JSON body"},
		request{"replicas too large", "POST", "/system/scale-function/hello", `{"replicas":101}`, 400, "replicas must be between 0 and 100"},
		request{"replicas overflow", "POST", "/system/scale-function/hello", `{"replicas":18446744073709551616}`, 400, "invalid JSON body"},
		request{"wrong serviceName", "POST", "/system/scale-function/hello", `{"serviceName":"other","replicas":3}`, 400, "serviceName other does not match"},
		request{"scale unknown namespace", "POST", "/system/scale-function/hello", `{"replicas":3,"namespace":"dev"}`, 400, "namespace dev is not valid"},
		request{"scale array body", "POST", "/system/scale-function/hello", `[{"replicas":3}]`, 400, "expected a JSON object"},
		request{"scale oversize", "POST", "/system/scale-function/hello", `{"serviceName":` + huge + `}`, 413, "request body larger than"},
		request{"delete without name", "DELETE", "/system/functions", `{"namespace":"openfaas-fn"}`, 400, "functionName is required"},
		request{"delete bad JSON", "DELETE", "/system/functions", `{"functionName":hello}`, 400, "invalid JSON body"},
		request{"delete unknown namespace", "DELETE", "/system/functions", `{"functionName":"hello","namespace":"dev"}`, 400, "namespace dev is not valid"},
		request{"delete oversize", "DELETE", "/system/functions", `{"functionName":` + huge + `}`, 413, "request body larger than"},
		request{"list unknown namespace", "GET", "/system/functions?namespace=dev", "", 400, "namespace dev is not valid"},
	)

	for _, r := range reqs {
		t.Run(r.method+" "+r.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, helloBody)
			before := f.snapshot(t)
			w := f.do(t, r.method, r.target, r.body)
			if w.Code != r.code {
				t.Fatalf("got %d %q, want %d", w.Code, w.Body.String(), r.code)
			}
			if !strings.Contains(w.Body.String(), r.msg) {
				t.Errorf("body %q, want it to contain %q", w.Body.String(), r.msg)
			}
			if len(w.Body.String()) > 400 {
				t.Errorf("error body is %d bytes; user input must be cut", len(w.Body.String()))
			}
			if after := f.snapshot(t); after != before {
				t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
			}
			if n := len(f.infoEntries()); n != 1 {
				t.Errorf("%d info lines, want only the seed deploy's", n)
			}
		})
	}
}

// TestUnknownFieldsAccepted: newer clients may send fields this daemon does
// not know; they are not an error.
func TestUnknownFieldsAccepted(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.do(t, http.MethodPost, "/system/functions", with(t, "futureField", `{"a":1}`)); w.Code != 202 {
		t.Fatalf("got %d %q, want 202", w.Code, w.Body.String())
	}
}

func TestValidName(t *testing.T) {
	tests := map[string]bool{
		"a": true, "hello": true, "hello-world": true, "0abc": true, "a1-b2": true,
		strings.Repeat("a", 63): true,
		"":                      false, strings.Repeat("a", 64): false, "Hello": false, "-a": false, "a-": false,
		"a.b": false, "a/b": false, "..": false, "a_b": false, "a b": false, "é": false,
	}
	for in, want := range tests {
		if got := validName(in); got != want {
			t.Errorf("validName(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestValidSecretName(t *testing.T) {
	tests := map[string]bool{
		"api-key": true, "a.b": true, "db.prod-1": true,
		"": false, ".": false, "..": false, "../x": false, "a..b": false, "a/b": false, "A": false, ".a": false,
	}
	for in, want := range tests {
		if got := validSecretName(in); got != want {
			t.Errorf("validSecretName(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestShort(t *testing.T) {
	tests := map[string]string{
		"dev":                   "dev",
		"":                      `""`,
		"a b":                   `"a b"`,
		"x\n":                   `"x\n"`,
		`q"`:                    `"q\""`,
		strings.Repeat("a", 90): strings.Repeat("a", 80) + "...",
	}
	for in, want := range tests {
		if got := short(in); got != want {
			t.Errorf("short(%q) = %q, want %q", in, got, want)
		}
	}
}
