package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/push"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

const backupUsage = `Usage: dockerfaasd backup [flags] FILE

Writes a backup of the daemon's state (the state file and the secrets key,
in one .tar.gz with a manifest) to FILE ("-" for stdout). By default it asks
the running daemon (GET /system/backup), which takes a consistent copy while
it goes on serving. With --state-dir it reads the files directly instead,
which needs the daemon stopped (a running one is detected and reported).

The archive holds the secrets key in the clear: keep it as private as the
state directory.

Flags:
  -g, --gateway URL     gateway (default: $OPENFAAS_URL, else http://127.0.0.1:8080)
  -u, --username USER   user for --password-stdin (default admin)
      --password-stdin  read the password from stdin
      --tls-no-verify   do not verify the gateway's TLS certificate
      --state-dir DIR   read DIR/state.db and DIR/secrets.key (daemon stopped)
      --state-db-path P the state file, when not DIR/state.db

Credentials: with --password-stdin, --username and the password from stdin;
otherwise what "faas-cli login" saved for the gateway.

Exit status: 0 written, 1 failed, 2 usage error.
`

const restoreUsage = `Usage: dockerfaasd restore [flags] FILE

Replaces the state file and the secrets key with those of the backup FILE
("-" for stdin). The daemon must be stopped: a state file it holds is
refused. The backup is checked first (a schema newer than this dockerfaasd,
or a record that does not read, is refused with nothing changed); the files
it replaces are kept as NAME.bak-<time>. Start the daemon afterwards: it
runs any schema migrations then.

Flags:
      --state-dir DIR   state directory (default: $STATE_DIR, else the daemon's default)
      --state-db-path P the state file, when not DIR/state.db (default: $STATE_DB_PATH)

Exit status: 0 restored, 1 failed, 2 usage error.
`

// stateFlags are the flags locating the state on disk.
type stateFlags struct{ dir, dbPath string }

func (s *stateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dir, "state-dir", s.dir, "")
	fs.StringVar(&s.dbPath, "state-db-path", s.dbPath, "")
}

// paths returns the state file and secrets key, as the daemon finds them.
func (s stateFlags) paths() (db, key string) {
	dir := s.dir
	if dir == "" {
		dir = defaultStateDir()
	}
	db = s.dbPath
	if db == "" {
		db = filepath.Join(dir, "state.db")
	}
	return db, secretsKeyFile(dir)
}

// parseCLI parses args into fs, which must leave exactly one positional
// argument; it returns it, or an exit code when done.
func parseCLI(name, usage string, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (string, int, bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return "", 0, true
	}
	if err == nil && fs.NArg() != 1 {
		err = errors.New("want exactly one FILE")
	}
	if err != nil {
		fmt.Fprintf(stderr, "dockerfaasd %s: %s\nRun 'dockerfaasd %s -h' for help.\n", name, err, name)
		return "", 2, true
	}
	return fs.Arg(0), 0, false
}

// runBackup is `dockerfaasd backup`; it returns the exit code.
func runBackup(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return backupMain(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
}

func backupMain(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	var (
		st                      stateFlags
		gateway, user           string
		passwordStdin, noVerify bool
	)
	st.register(fs)
	for _, n := range []string{"g", "gateway"} {
		fs.StringVar(&gateway, n, "", "")
	}
	for _, n := range []string{"u", "username"} {
		fs.StringVar(&user, n, "admin", "")
	}
	fs.BoolVar(&passwordStdin, "password-stdin", false, "")
	fs.BoolVar(&noVerify, "tls-no-verify", false, "")
	file, code, done := parseCLI("backup", backupUsage, fs, args, stdout, stderr)
	if done {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dockerfaasd backup: %s\n", err)
		return 1
	}

	var fetch func(w io.Writer) error
	if st.dir != "" || st.dbPath != "" {
		db, key := st.paths()
		fetch = func(w io.Writer) error {
			_, err := store.BackupFile(ctx, db, key, w, version)
			return err
		}
	} else {
		gw, err := push.GatewayURL(gateway, getenv)
		if err != nil {
			fmt.Fprintf(stderr, "dockerfaasd backup: %s\n", err)
			return 2
		}
		creds, err := backupCredentials(gw.String(), user, passwordStdin, getenv, stdin)
		if err != nil {
			return fail(err)
		}
		client := push.NewHTTPClient(noVerify, 10*time.Second)
		fetch = func(w io.Writer) error { return downloadBackup(ctx, client, gw.String(), creds, w) }
	}

	m, err := writeVerified(file, stdout, fetch)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stderr, "dockerfaasd backup: wrote %s (schema %d, taken %s by dockerfaasd %s)\n",
		file, m.Schema, m.CreatedAt.Format(time.RFC3339), m.Version)
	return 0
}

// backupCredentials are --password-stdin's, else faas-cli's saved ones,
// else none (a daemon with auth then answers 401, which is reported).
func backupCredentials(gateway, user string, passwordStdin bool, getenv func(string) string, stdin io.Reader) (push.Credentials, error) {
	if passwordStdin {
		b, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return push.Credentials{}, fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return push.Credentials{}, errors.New("--password-stdin: stdin is empty")
		}
		return push.Credentials{Username: user, Password: pw}, nil
	}
	path, err := push.ConfigPath(getenv)
	if err != nil {
		return push.Credentials{}, nil
	}
	gw, err := push.GatewayURL(gateway, getenv)
	if err != nil {
		return push.Credentials{}, err
	}
	c, err := push.SavedCredentials(path, gw)
	if err != nil {
		return push.Credentials{}, nil // none saved: try without
	}
	return c, nil
}

// downloadBackup GETs /system/backup into w.
func downloadBackup(ctx context.Context, client *http.Client, gateway string, c push.Credentials, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(gateway, "/")+"/system/backup", nil)
	if err != nil {
		return err
	}
	switch {
	case c.Username != "" || c.Password != "":
		req.SetBasicAuth(c.Username, c.Password)
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ask the daemon at %s: %w (is it running? with it stopped, use --state-dir)", gateway, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		hint := ""
		if res.StatusCode == http.StatusUnauthorized {
			hint = " (log in with faas-cli login, or pass --password-stdin)"
		}
		return fmt.Errorf("GET /system/backup: %s: %s%s", res.Status, strings.TrimSpace(string(msg)), hint)
	}
	if _, err := io.Copy(w, res.Body); err != nil {
		return fmt.Errorf("GET /system/backup: %w", err)
	}
	return nil
}

// writeVerified writes what fetch produces to file ("-": stdout) through
// a temporary file that is checked with store.VerifyBackup before it is
// renamed into place, so FILE is a whole, readable backup or untouched.
func writeVerified(file string, stdout io.Writer, fetch func(io.Writer) error) (store.BackupManifest, error) {
	dir := os.TempDir()
	if file != "-" {
		dir = filepath.Dir(file)
	}
	tmp, err := os.CreateTemp(dir, ".dockerfaasd-backup-*") // mode 0600: it holds the secrets key
	if err != nil {
		return store.BackupManifest{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := fetch(tmp); err != nil {
		return store.BackupManifest{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return store.BackupManifest{}, err
	}
	m, err := store.VerifyBackup(tmp)
	if err != nil {
		return store.BackupManifest{}, fmt.Errorf("the backup received does not check out: %w", err)
	}
	if file == "-" {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return m, err
		}
		_, err := io.Copy(stdout, tmp)
		return m, err
	}
	if err := tmp.Sync(); err != nil {
		return m, err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return m, err
	}
	return m, nil
}

// runRestore is `dockerfaasd restore`; it returns the exit code.
func runRestore(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return restoreMain(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
}

func restoreMain(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	st := stateFlags{dir: getenv("STATE_DIR"), dbPath: getenv("STATE_DB_PATH")}
	st.register(fs)
	file, code, done := parseCLI("restore", restoreUsage, fs, args, stdout, stderr)
	if done {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dockerfaasd restore: %s\n", err)
		return 1
	}
	if getenv("STATE_JOURNAL") == runtimeSwarm {
		return fail(errors.New("with STATE_JOURNAL=swarm the swarm's journal is the state, and the file is rebuilt from it at start: restore does not apply"))
	}
	var in io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		in = f
	}
	db, key := st.paths()
	res, err := store.Restore(ctx, in, db, key, time.Now())
	if err != nil {
		return fail(err)
	}
	m := res.Manifest
	fmt.Fprintf(stdout, "restored %s (schema %d, taken %s by dockerfaasd %s)\n", db, m.Schema, m.CreatedAt.Format(time.RFC3339), m.Version)
	for _, kept := range []string{res.StateBackup, res.KeyBackup} {
		if kept != "" {
			fmt.Fprintf(stdout, "kept the previous file as %s\n", kept)
		}
	}
	return 0
}
