package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/addresses"
	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// config is everything the daemon can be told. Each field has an environment
// variable and a flag of the same meaning; a flag given on the command line
// wins over the environment.
type config struct {
	DockerHost       string
	Runtime          string
	SwarmEncrypted   bool
	StateJournal     string
	BindAddress      string
	TLSCertFile      string
	TLSKeyFile       string
	Port             int
	StateDir         string
	DBPath           string
	Instance         string
	FunctionsNetwork string
	AuthUser         string
	AuthPassword     string
	InvokeAuth       bool
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	ExecTimeout      time.Duration
	ReadyWait        time.Duration
	Resync           time.Duration
	Workers          int
	MaxReplicas      uint64
	ScaleMaxDefault  uint64
	ScaleZero        time.Duration
	ScaleDownWindow  time.Duration
	ParkRetention    time.Duration
	AutoscaleEvery   time.Duration
	LegacyScaleRPS   float64
	MaxBodyBytes     int64
	ImageUploadMax   int64
	Build            buildConfig
	Async            asyncConfig
	ExecutionsMax    int
	ExecutionsMaxAge time.Duration
	JobConcurrency   int
	JobWarm          int
	JobInitBinary    string
	PoolSize         int
	HandoffDir       string
	PidsLimit        int64
	SelfContainer    string
	LogLevel         string
	LogFormat        string
	Pprof            bool
	FastPath         bool
	Procs            int // GOMAXPROCS to set; 0: leave the runtime's
	procs            string

	// FunctionCIDR, when valid, gives every function an address of its own
	// (pkg/addresses), served on FunctionAddressPort.
	FunctionCIDR        netip.Prefix
	FunctionAddressPort int

	// Login throttle (pkg/api): failures per client and window, and the
	// proxies whose X-Forwarded-For is believed.
	AuthFailuresMax    int
	AuthFailureWindow  time.Duration
	AuthTrustedProxies []netip.Prefix
}

// The runtimes RUNTIME selects.
const (
	runtimeDocker = "docker"
	runtimeSwarm  = "swarm"
)

// setting describes one configuration entry; the README table mirrors these.
type setting struct {
	env, flag, def, help string
	set                  func(string) error
}

func settings(c *config) []setting {
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	dur := func(p *time.Duration) func(string) error {
		return func(v string) error {
			d, err := parseDuration(v)
			*p = d
			return err
		}
	}
	posInt := func(p *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be at least 1")
			}
			*p = n
			return err
		}
	}
	posInt64 := func(p *int64) func(string) error {
		return func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n < 1 {
				err = errors.New("must be at least 1")
			}
			*p = n
			return err
		}
	}
	return []setting{
		{"DOCKER_HOST", "docker-host", "", "Docker Engine address (default: the local socket)", str(&c.DockerHost)},
		{"RUNTIME", "runtime", "docker", "docker (containers on one host) or swarm (services on a Docker Swarm; the engine must be a manager)", str(&c.Runtime)},
		{"STATE_JOURNAL", "state-journal", "none", "none, or swarm: keep every state write also in the swarm's Raft log (configs), and rebuild the state file from it at start; set by the supervisor of a daemon run as a swarm service", str(&c.StateJournal)},
		{"SWARM_ENCRYPTED_NETWORKS", "swarm-encrypted-networks", "false", "with RUNTIME=swarm, create function overlay networks with IPsec encryption (the kernel needs ESP)", func(v string) (err error) { c.SwarmEncrypted, err = strconv.ParseBool(v); return }},
		{"BIND_ADDRESS", "bind-address", "", "address to listen on (default: all interfaces)", str(&c.BindAddress)},
		{"GATEWAY_PORT", "port", "8080", "HTTP port for the OpenFaaS API and invocations", func(v string) (err error) { c.Port, err = strconv.Atoi(v); return }},
		{"TLS_CERT_FILE", "tls-cert-file", "", "PEM certificate (chain) to serve the API over HTTPS with, TLS 1.2 and later; re-read on SIGHUP (needs TLS_KEY_FILE; default: plain HTTP)", str(&c.TLSCertFile)},
		{"TLS_KEY_FILE", "tls-key-file", "", "PEM private key of TLS_CERT_FILE; re-read with it on SIGHUP", str(&c.TLSKeyFile)},
		{"STATE_DIR", "state-dir", defaultStateDir(), "directory for the state database, the generated password and the secrets key", str(&c.StateDir)},
		{"STATE_DB_PATH", "state-db-path", "", "bbolt database file (default: STATE_DIR/state.db)", str(&c.DBPath)},
		{"INSTANCE", "instance", "dockerfaasd", "name of this daemon: container name prefix and ownership label", str(&c.Instance)},
		{"FUNCTIONS_NETWORK", "functions-network", "", "prefix of per-function networks (bridge, or overlay with RUNTIME=swarm; default: INSTANCE)", str(&c.FunctionsNetwork)},
		{"AUTH_USER", "auth-user", "admin", "basic auth user", str(&c.AuthUser)},
		{"AUTH_PASSWORD", "auth-password", "", "basic auth password (default: generated into STATE_DIR/basic-auth-password)", str(&c.AuthPassword)},
		{"INVOKE_AUTH", "invoke-auth", "true", "require basic auth on /function/* too", func(v string) (err error) { c.InvokeAuth, err = strconv.ParseBool(v); return }},
		{"AUTH_FAILURES_MAX", "auth-failures-max", "10", "wrong basic auth credentials one client address may send within AUTH_FAILURE_WINDOW; beyond, it gets 429 with Retry-After until the window ends (0 = no limit)", func(v string) (err error) {
			c.AuthFailuresMax, err = strconv.Atoi(v)
			if err == nil && c.AuthFailuresMax < 0 {
				err = errors.New("must not be negative")
			}
			return err
		}},
		{"AUTH_FAILURE_WINDOW", "auth-failure-window", "1m", "how long failed logins of a client address count, from its first one", dur(&c.AuthFailureWindow)},
		{"AUTH_TRUSTED_PROXIES", "auth-trusted-proxies", "", "reverse proxies (IPs and CIDRs, comma-separated) whose X-Forwarded-For names the client the login limit counts; from any other peer the header is ignored (default: none)", func(v string) (err error) { c.AuthTrustedProxies, err = api.ParseTrustedProxies(v); return }},
		{"DEFAULT_TIMEOUTS", "default-timeouts", "60s", "read/write/exec timeouts: one duration for all, or read=60s,write=60s,exec=60s", c.setTimeouts},
		{"READY_WAIT", "ready-wait", "10s", "how long an invocation waits for a ready replica before 503", dur(&c.ReadyWait)},
		{"RESYNC_INTERVAL", "resync-interval", "30s", "period of the full resync of desired and observed state", dur(&c.Resync)},
		{"WORKERS", "workers", "4", "reconcile workers", func(v string) (err error) { c.Workers, err = strconv.Atoi(v); return }},
		{"MAX_REPLICAS", "max-replicas", "100", "upper bound on replicas per function", func(v string) (err error) { c.MaxReplicas, err = strconv.ParseUint(v, 10, 64); return }},
		{"SCALE_MAX_DEFAULT", "scale-max-default", "20", "max replicas of a function without a com.openfaas.scale.max label", func(v string) (err error) { c.ScaleMaxDefault, err = strconv.ParseUint(v, 10, 64); return }},
		{"SCALE_ZERO_DURATION", "scale-zero-duration", "15m", "idle time before a function with com.openfaas.scale.zero=true goes to zero, when its zero-duration label is absent", dur(&c.ScaleZero)},
		{"SCALE_DOWN_WINDOW", "scale-down-window", "30s", "how long the load must want fewer replicas before the autoscaler removes any, when the down.window label is absent", dur(&c.ScaleDownWindow)},
		{"PARK_RETENTION", "park-retention", "10m", "how long the paused replicas of a function scaled to zero are kept (woken in milliseconds) before they are removed; 0 removes them at once", func(v string) (err error) {
			if v == "0" {
				c.ParkRetention = 0
				return nil
			}
			c.ParkRetention, err = parseDuration(v)
			return err
		}},
		{"AUTOSCALE_INTERVAL", "autoscale-interval", "1s", "how often the autoscaler looks at the load of every function", dur(&c.AutoscaleEvery)},
		{"LEGACY_SCALE_RPS", "legacy-scale-rps", "5", "requests per second above which a function without scale.type or scale.target labels steps up (OpenFaaS CE's alert rule)", func(v string) (err error) { c.LegacyScaleRPS, err = strconv.ParseFloat(v, 64); return }},
		{"MAX_BODY_BYTES", "max-body-bytes", "67108864", "largest invocation request body in bytes (413 beyond it; 0 = no limit)", func(v string) (err error) { c.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64); return }},
		{"IMAGE_UPLOAD_MAX", "image-upload-max", "2Gi", "largest image archive POST /system/images takes, in bytes or with a suffix such as Mi or Gi; bounds what is received and what it decompresses to (413 beyond it)", func(v string) (err error) {
			c.ImageUploadMax, err = quantity.ParseBytes(v)
			if err == nil && c.ImageUploadMax < 1 {
				err = errors.New("must be at least 1 byte")
			}
			return
		}},
		{"BUILD_MAX_BYTES", "build-max-bytes", "512Mi", "largest request POST /build takes (the tar faas-cli sends), in bytes or with a suffix such as Mi or Gi (413 beyond it); also bounds a template upload", func(v string) (err error) {
			c.Build.MaxBytes, err = quantity.ParseBytes(v)
			if err == nil && c.Build.MaxBytes < 1 {
				err = errors.New("must be at least 1 byte")
			}
			return
		}},
		{"BUILD_CONCURRENCY", "build-concurrency", "2", "image builds running at once (429 beyond)", posInt(&c.Build.Concurrency)},
		{"BUILD_TIMEOUT", "build-timeout", "10m", "time limit of one build, its test and its deploy", dur(&c.Build.Timeout)},
		{"BUILD_RETENTION", "build-retention", "200", "build records kept (GET /system/builds), oldest dropped first", posInt(&c.Build.Retention)},
		{"BUILDER_PAYLOAD_SECRET_FILE", "builder-payload-secret-file", "", "file with the secret POST /build requests are signed with (X-Build-Signature; faas-cli --payload-secret); generated on first start (default: STATE_DIR/payload-secret)", str(&c.Build.SecretFile)},
		{"TEMPLATES_DIR", "templates-dir", "", "directory of the server-side language templates, in faas-cli's layout (default: STATE_DIR/templates)", str(&c.Build.TemplatesDir)},
		{"ASYNC_MAX_BODY_BYTES", "async-max-body-bytes", "1048576", "largest async call body in bytes (413 beyond it)", posInt64(&c.Async.MaxBodyBytes)},
		{"ASYNC_MAX_RESULT_BYTES", "async-max-result-bytes", "1048576", "longest function response kept for an async call's callback (cut beyond it, X-Result-Truncated: true)", posInt64(&c.Async.MaxResultBytes)},
		{"ASYNC_MAX_INFLIGHT", "async-max-inflight", "10", "async calls of one function running at once, when its io.dockerfaas.async.max-inflight annotation is absent", posInt(&c.Async.Policy.MaxInflight)},
		{"ASYNC_RETRY_ATTEMPTS", "async-retry-attempts", "10", "most invocations of an async call (the first included), when com.openfaas.retry.attempts is absent", posInt(&c.Async.Policy.Attempts)},
		{"ASYNC_RETRY_CODES", "async-retry-codes", "408,429,500,502,503,504", "statuses an async call is retried on, when com.openfaas.retry.codes is absent", func(v string) (err error) { c.Async.Policy.Codes, err = async.ParseCodes(v); return }},
		{"ASYNC_RETRY_MIN_WAIT", "async-retry-min-wait", "1s", "wait before an async call's first retry, doubled per retry, when com.openfaas.retry.min_wait is absent", dur(&c.Async.Policy.MinWait)},
		{"ASYNC_RETRY_MAX_WAIT", "async-retry-max-wait", "2m", "longest wait between attempts of an async call, when com.openfaas.retry.max_wait is absent", dur(&c.Async.Policy.MaxWait)},
		{"ASYNC_CALLBACK_ATTEMPTS", "async-callback-attempts", "5", "how often a callback is tried before it is recorded as failed", posInt(&c.Async.CallbackAttempts)},
		{"ASYNC_CALLBACK_TIMEOUT", "async-callback-timeout", "30s", "time limit of one callback request", dur(&c.Async.CallbackTimeout)},
		{"ASYNC_CALLBACK_HOSTS", "async-callback-hosts", "", "hosts callbacks may go to: names, *.domain, IPs and CIDRs, comma-separated (default: any; see docs/async.md)", func(v string) (err error) { c.Async.Guard, err = async.ParseGuard(v); return }},
		{"ASYNC_RECORDS_MAX", "async-records-max", "10000", "records of finished async calls kept (oldest pruned first)", posInt(&c.Async.RecordsMax)},
		{"ASYNC_RECORDS_MAX_AGE", "async-records-max-age", "168h", "how long the record of a finished async call is kept", dur(&c.Async.RecordsMaxAge)},
		{"EXECUTIONS_MAX", "executions-max", "10000", "execution records (job runs, async attempts) kept, oldest pruned first; running ones are never pruned", posInt(&c.ExecutionsMax)},
		{"EXECUTIONS_MAX_AGE", "executions-max-age", "168h", "how long an execution record is kept after it ended", dur(&c.ExecutionsMaxAge)},
		{"JOB_CONCURRENCY", "job-concurrency", "8", "calls of one job-mode function running at once, when its io.dockerfaas.job.concurrency annotation is absent (more wait up to READY_WAIT, then 429)", posInt(&c.JobConcurrency)},
		{"JOB_WARM", "job-warm", "1", "containers each job-mode function keeps started ahead of its calls, when its io.dockerfaas.job.warm annotation is absent (0 = none; see README, Job mode)", func(v string) error {
			n, _, err := faas.JobWarmOf(map[string]string{faas.AnnotationJobWarm: v})
			if err != nil {
				return fmt.Errorf("want an integer from 0 to %d", faas.MaxJobWarm)
			}
			c.JobWarm = n
			return nil
		}},
		{"JOB_INIT_BINARY", "job-init-binary", "", "a statically linked dockerfaasd binary for job containers started ahead of their calls to run first (default: this daemon's own binary, when it is statically linked)", str(&c.JobInitBinary)},
		{"POOL_SIZE", "pool-size", "2", "ready containers each function with per-request isolation keeps, when its io.dockerfaas.pool.size annotation is absent (see README, Per-request isolation)", func(v string) error {
			iso, err := faas.IsolationOf(map[string]string{faas.AnnotationIsolation: faas.IsolationPerRequest, faas.AnnotationPoolSize: v})
			if err != nil {
				return fmt.Errorf("want an integer from 1 to %d", faas.MaxPoolSize)
			}
			c.PoolSize = iso.PoolSize
			return nil
		}},
		{"HANDOFF_DIR", "handoff-dir", "", "directory of the control sockets of socket-protocol containers (default: STATE_DIR/handoff; keep the path short, Unix sockets allow 107 bytes)", str(&c.HandoffDir)},
		{"PIDS_LIMIT", "pids-limit", "1024", "process limit per function container (0 = Docker's default)", func(v string) (err error) { c.PidsLimit, err = strconv.ParseInt(v, 10, 64); return }},
		{"SELF_CONTAINER", "self-container", "auto", "this daemon's container (ID or name) when it runs in one, to join function networks; auto detects it, none disables", str(&c.SelfContainer)},
		{"FUNCTION_CIDR", "function-cidr", "", "IPv4 CIDR (such as 127.77.0.0/24) to give every function an address of its own, served at http://ADDRESS/ like /function/NAME (default: off; see README, A dedicated address per function)", func(v string) (err error) {
			c.FunctionCIDR = netip.Prefix{}
			if v != "" {
				c.FunctionCIDR, err = addresses.ParsePrefix(v)
			}
			return err
		}},
		{"FUNCTION_ADDRESS_PORT", "function-address-port", "80", "port every function address (FUNCTION_CIDR) is served on", func(v string) (err error) {
			c.FunctionAddressPort, err = strconv.Atoi(v)
			if err == nil && (c.FunctionAddressPort < 1 || c.FunctionAddressPort > 65535) {
				err = errors.New("want a port from 1 to 65535")
			}
			return err
		}},
		{"LOG_LEVEL", "log-level", "info", "debug, info, warn or error", str(&c.LogLevel)},
		{"LOG_FORMAT", "log-format", "text", "text or json", str(&c.LogFormat)},
		{"FAST_PATH", "fast-path", "true", "serve /function/* calls on plain HTTP from the daemon's own HTTP/1.1 loop (false: net/http's server serves everything); see docs/data-plane.md", func(v string) (err error) { c.FastPath, err = strconv.ParseBool(v); return }},
		{"PROCS", "procs", "auto", "how many CPUs run the daemon's Go code at once (its GOMAXPROCS): a number, or auto: half of those it may use, at least 1, leaving the rest to function containers (auto keeps a GOMAXPROCS set in the environment); see docs/data-plane.md", func(v string) error {
			_, err := parseProcs(v, "", 1)
			c.procs = v
			return err
		}},
		{"PPROF", "pprof", "false", "serve Go's profiler at /debug/pprof/ (behind the API's basic auth), for profiling the daemon", func(v string) (err error) { c.Pprof, err = strconv.ParseBool(v); return }},
	}
}

// asyncConfig is the async queue's part of the configuration.
type asyncConfig struct {
	MaxBodyBytes     int64
	MaxResultBytes   int64
	Policy           async.Policy
	CallbackAttempts int
	CallbackTimeout  time.Duration
	Guard            async.Guard
	RecordsMax       int
	RecordsMaxAge    time.Duration
}

// parseConfig reads the environment, then flags from args.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("dockerfaasd", flag.ContinueOnError)
	ss := settings(&c)
	for _, s := range ss {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if err := s.set(v); err != nil {
			return c, fmt.Errorf("%s=%q: %w", s.env, v, err)
		}
		s := s
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def), s.set)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Procs, _ = parseProcs(c.procs, getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)) // checked when set
	if c.DBPath == "" {
		c.DBPath = filepath.Join(c.StateDir, "state.db")
	}
	if c.HandoffDir == "" {
		c.HandoffDir = filepath.Join(c.StateDir, "handoff")
	}
	if c.Build.SecretFile == "" {
		c.Build.SecretFile = filepath.Join(c.StateDir, "payload-secret")
	}
	if c.Build.TemplatesDir == "" {
		c.Build.TemplatesDir = filepath.Join(c.StateDir, "templates")
	}
	if c.FunctionsNetwork == "" {
		c.FunctionsNetwork = c.Instance
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch {
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("GATEWAY_PORT %d out of range", c.Port)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither for plain HTTP")
	case c.Runtime != runtimeDocker && c.Runtime != runtimeSwarm:
		return fmt.Errorf("RUNTIME %q: want %s or %s", c.Runtime, runtimeDocker, runtimeSwarm)
	case c.StateJournal != "none" && c.StateJournal != runtimeSwarm:
		return fmt.Errorf("STATE_JOURNAL %q: want none or swarm", c.StateJournal)
	case c.StateJournal == runtimeSwarm && c.Runtime != runtimeSwarm:
		return errors.New("STATE_JOURNAL=swarm needs RUNTIME=swarm")
	case !dockerName(c.Instance):
		return fmt.Errorf("INSTANCE %q: use letters, digits, '-' and '_'", c.Instance)
	case !dockerName(c.FunctionsNetwork):
		return fmt.Errorf("FUNCTIONS_NETWORK %q: use letters, digits, '-' and '_'", c.FunctionsNetwork)
	case c.AuthUser == "":
		return errors.New("AUTH_USER must not be empty")
	case c.Workers <= 0:
		return errors.New("WORKERS must be positive")
	case c.MaxReplicas == 0:
		return errors.New("MAX_REPLICAS must be positive")
	case c.ScaleMaxDefault == 0 || c.ScaleMaxDefault > c.MaxReplicas:
		return fmt.Errorf("SCALE_MAX_DEFAULT %d: want 1 to MAX_REPLICAS (%d)", c.ScaleMaxDefault, c.MaxReplicas)
	case c.ScaleZero <= 0:
		return errors.New("SCALE_ZERO_DURATION must be positive")
	case c.ScaleDownWindow <= 0 || c.ScaleDownWindow > 5*time.Minute:
		return errors.New("SCALE_DOWN_WINDOW must be positive and at most 5m")
	case c.ParkRetention < 0:
		return errors.New("PARK_RETENTION must not be negative")
	case c.AutoscaleEvery <= 0:
		return errors.New("AUTOSCALE_INTERVAL must be positive")
	case !(c.LegacyScaleRPS > 0) || math.IsInf(c.LegacyScaleRPS, 0):
		return errors.New("LEGACY_SCALE_RPS must be a positive number")
	case c.Async.Policy.MaxWait < c.Async.Policy.MinWait:
		return errors.New("ASYNC_RETRY_MAX_WAIT must not be below ASYNC_RETRY_MIN_WAIT")
	}
	return nil
}

func dockerName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// defaultTimeout is what a timeout left out of the "read=..,write=..,exec=.."
// form of DEFAULT_TIMEOUTS gets: the setting's default.
const defaultTimeout = 60 * time.Second

// setTimeouts accepts "60s" (all three) or "read=..,write=..,exec=..", where
// a timeout left out keeps defaultTimeout rather than becoming zero.
func (c *config) setTimeouts(v string) error {
	if !strings.Contains(v, "=") {
		d, err := parseDuration(v)
		c.ReadTimeout, c.WriteTimeout, c.ExecTimeout = d, d, d
		return err
	}
	c.ReadTimeout, c.WriteTimeout, c.ExecTimeout = defaultTimeout, defaultTimeout, defaultTimeout
	for _, part := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		d, err := parseDuration(val)
		if err != nil {
			return err
		}
		switch k {
		case "read":
			c.ReadTimeout = d
		case "write":
			c.WriteTimeout = d
		case "exec":
			c.ExecTimeout = d
		default:
			return fmt.Errorf("unknown timeout %q (want read, write or exec)", k)
		}
	}
	return nil
}

// parseProcs turns a PROCS value into the GOMAXPROCS to set, 0 for the
// runtime's own: an explicit GOMAXPROCS in the environment (env) under
// auto. current is the runtime's value, the CPUs the process may use.
func parseProcs(v, env string, current int) (int, error) {
	if v == "auto" {
		if env != "" {
			return 0, nil
		}
		return max(1, current/2), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1024 {
		return 0, errors.New("want auto or a number of CPUs from 1 to 1024")
	}
	return n, nil
}

// parseDuration accepts positive Go durations and, like the OpenFaaS
// watchdogs, plain seconds.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		// Zero or less would be a timeout that fires at once or a ticker
		// that panics; beyond the limit the product wraps negative.
		if n <= 0 || n > int(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("duration %q must be a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = fmt.Errorf("duration %q must be positive", v)
	}
	return d, err
}

func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/dockerfaasd"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "dockerfaasd")
	}
	return ".dockerfaasd"
}

// passwordFile is where a generated password is kept.
func passwordFile(stateDir string) string { return filepath.Join(stateDir, "basic-auth-password") }

// secretsKeyFile is where the key secrets are encrypted with is kept: in the
// state dir even when STATE_DB_PATH puts the database elsewhere.
func secretsKeyFile(stateDir string) string { return filepath.Join(stateDir, store.SecretKeyFile) }

// ensurePassword returns the configured password or the one kept in the
// state dir, generating it (0600) on first start. generated is true when the
// file was just written.
func ensurePassword(c config) (password, path string, generated bool, err error) {
	if c.AuthPassword != "" {
		return c.AuthPassword, "", false, nil
	}
	path = passwordFile(c.StateDir)
	if b, err := os.ReadFile(path); err == nil {
		if p := strings.TrimSpace(string(b)); p != "" {
			return p, path, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", path, false, fmt.Errorf("read password: %w", err)
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("create state dir: %w", err)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", path, false, err
	}
	p := base64.RawURLEncoding.EncodeToString(buf)
	// Write to a temp file and rename, so a crash never leaves a half file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(p+"\n"), 0o600); err != nil {
		return "", path, false, fmt.Errorf("write password: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", path, false, fmt.Errorf("write password: %w", err)
	}
	return p, path, true, nil
}
