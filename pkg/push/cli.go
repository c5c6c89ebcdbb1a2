package push

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// Exit codes of `dockerfaasd push`.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Env is what the command reaches of its surroundings, so tests can run it
// in process.
type Env struct {
	// Args follow "push" on the command line.
	Args   []string
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// StderrIsTerminal draws the progress bar in place.
	StderrIsTerminal bool
	// NewEngine connects to the local Docker Engine; the func it returns
	// releases it.
	NewEngine func() (Engine, func(), error)
}

const usageText = `Usage: dockerfaasd push IMAGE [flags]

Copies IMAGE from the local Docker Engine (DOCKER_HOST and the other Docker
client variables) to a dockerfaasd gateway, with no registry in between:
docker save, streamed to POST /system/images. With --deploy, then deploys it
as a function, as faas-cli deploy does, and prints its URL.

Flags:
  --deploy NAME          deploy IMAGE as function NAME after the push
  -n, --namespace NS     namespace of the function (default: the gateway's)
  -e, --env KEY=VALUE    environment variable of the function (repeatable)
  -l, --label KEY=VALUE  label of the function (repeatable)
  -g, --gateway URL      gateway (default: $OPENFAAS_URL, else http://127.0.0.1:8080)
  --gzip                 compress the archive on the fly (slow links)
  --tls-no-verify        do not verify the gateway's TLS certificate
  -u, --username USER    user for --password-stdin (default admin)
  -s, --password-stdin   read the password from stdin
  --timeout DURATION     bound for connecting and for the deploy requests (default 60s)
  -q, --quiet            no progress report
  -h, --help             this help

Credentials: with --password-stdin, --username and the password read from
stdin; otherwise what "faas-cli login" saved for the gateway (config.yml in
$OPENFAAS_CONFIG, else ./.openfaas when CI=true, else ~/.openfaas); otherwise
none. The password is never printed.

TLS: https gateways are verified against the system's roots; SSL_CERT_FILE
(a PEM bundle used instead of the system's) or SSL_CERT_DIR trust a private CA.

Exit status: 0 pushed (and deployed), 1 failed, 2 usage error.
`

// flags is the parsed command line.
type flags struct {
	image, deploy, namespace, gateway, username string
	env, labels                                 []string
	gzip, tlsNoVerify, passwordStdin, quiet     bool
	timeout                                     time.Duration
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// usageError is a bad command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags reads the command line; flags may come before and after IMAGE.
func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("dockerfaasd push", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.deploy, "deploy", "", "")
	for _, n := range []string{"namespace", "n"} {
		fs.StringVar(&f.namespace, n, "", "")
	}
	for _, n := range []string{"gateway", "g"} {
		fs.StringVar(&f.gateway, n, "", "")
	}
	for _, n := range []string{"username", "u"} {
		fs.StringVar(&f.username, n, "", "")
	}
	for _, n := range []string{"env", "e"} {
		fs.Var((*multiFlag)(&f.env), n, "")
	}
	for _, n := range []string{"label", "l"} {
		fs.Var((*multiFlag)(&f.labels), n, "")
	}
	for _, n := range []string{"password-stdin", "s"} {
		fs.BoolVar(&f.passwordStdin, n, false, "")
	}
	for _, n := range []string{"quiet", "q"} {
		fs.BoolVar(&f.quiet, n, false, "")
	}
	fs.BoolVar(&f.gzip, "gzip", false, "")
	fs.BoolVar(&f.tlsNoVerify, "tls-no-verify", false, "")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "")

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return f, err
			}
			return f, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	switch {
	case len(positional) == 0:
		return f, usageError{"IMAGE is required"}
	case len(positional) > 1:
		return f, usageError{fmt.Sprintf("one IMAGE at a time (got %s)", strings.Join(positional, " "))}
	case positional[0] == "":
		return f, usageError{"IMAGE must not be empty"}
	case f.username != "" && !f.passwordStdin:
		return f, usageError{"--username goes with --password-stdin"}
	case f.timeout <= 0:
		return f, usageError{"--timeout must be positive"}
	case f.deploy == "" && (f.namespace != "" || len(f.env) > 0 || len(f.labels) > 0):
		return f, usageError{"--namespace, --env and --label go with --deploy"}
	}
	f.image = positional[0]
	if f.username == "" {
		f.username = "admin"
	}
	return f, nil
}

// Main runs `dockerfaasd push` and returns its exit code.
func Main(ctx context.Context, env Env) int {
	f, err := parseFlags(env.Args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(env.Stdout, usageText)
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "dockerfaasd push: %s\nRun 'dockerfaasd push -h' for help.\n", ue.msg)
		return ExitUsage
	}
	envVars, err := ParseKeyValues("env", f.env)
	if err == nil {
		var labels map[string]string
		labels, err = ParseKeyValues("label", f.labels)
		if err == nil {
			return run(ctx, env, f, envVars, labels)
		}
	}
	fmt.Fprintf(env.Stderr, "dockerfaasd push: %s\n", err)
	return ExitUsage
}

func run(ctx context.Context, env Env, f flags, envVars, labels map[string]string) int {
	fail := func(err error) int {
		fmt.Fprintf(env.Stderr, "dockerfaasd push: %s\n", err)
		return ExitFailure
	}
	gw, err := GatewayURL(f.gateway, env.Getenv)
	if err != nil {
		fmt.Fprintf(env.Stderr, "dockerfaasd push: %s\n", err)
		return ExitUsage
	}
	creds, err := credentials(f, gw, env)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.Stderr, "dockerfaasd push: %s\n", err)
			return ExitUsage
		}
		return fail(err)
	}
	engine, release, err := env.NewEngine()
	if err != nil {
		return fail(fmt.Errorf("local Docker Engine: %w", err))
	}
	defer release()

	p := &Pusher{
		Engine: engine,
		Gateway: &HTTPGateway{
			URL:         gw,
			Client:      NewHTTPClient(f.tlsNoVerify, f.timeout),
			Credentials: creds,
			Timeout:     f.timeout,
		},
		GatewayURL: gw,
		Out:        env.Stdout,
	}
	if !f.quiet {
		p.NewProgress = func(label string, expected int64, gz bool) *Progress {
			return &Progress{W: env.Stderr, Label: label, Expected: expected, Terminal: env.StderrIsTerminal, Gzip: gz}
		}
	}
	err = p.Run(ctx, Options{
		Image: f.image, Deploy: f.deploy, Namespace: f.namespace,
		Env: envVars, Labels: labels, Gzip: f.gzip,
	})
	if errors.Is(err, ErrImageNotFound) {
		return fail(fmt.Errorf("%w (engine %s)", err, engineHost(env.Getenv)))
	}
	if err != nil {
		return fail(err)
	}
	return ExitOK
}

// credentials: --password-stdin, else faas-cli's saved login, else none.
func credentials(f flags, gw *url.URL, env Env) (Credentials, error) {
	if f.passwordStdin {
		b, err := io.ReadAll(io.LimitReader(env.Stdin, 64<<10))
		if err != nil {
			return Credentials{}, fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return Credentials{}, usageError{"--password-stdin: stdin is empty"}
		}
		return Credentials{Username: f.username, Password: pw, Source: "--password-stdin"}, nil
	}
	path, err := ConfigPath(env.Getenv)
	if err != nil {
		return Credentials{}, err
	}
	c, err := SavedCredentials(path, gw)
	if errors.Is(err, errNoSavedCredentials) {
		return Credentials{}, nil
	}
	if err != nil {
		// faas-cli goes on without credentials too; say why.
		fmt.Fprintf(env.Stderr, "dockerfaasd push: warning: %s; going on without credentials\n", err)
		return Credentials{}, nil
	}
	return c, nil
}

func engineHost(getenv func(string) string) string {
	if h := getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return client.DefaultDockerHost
}

// ConnectDocker returns the local engine from the Docker client environment
// (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION),
// negotiating the API version.
func ConnectDocker() (Engine, func(), error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, nil, err
	}
	return DockerEngine{API: cli}, func() { _ = cli.Close() }, nil
}

// IsTerminal reports whether f is a terminal (a character device), where a
// progress bar can be redrawn in place.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
