package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errNoNginx means nginx is not installed; hack/install-nginx.sh installs it.
var errNoNginx = errors.New("nginx not found")

// nginxProc is an nginx the bench started for path N: one reverse-proxy
// hop, the best-known one, to the same function container as path A.
type nginxProc struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	// fieldsAddr is the same hop adding the fields the daemon's contract
	// adds (see nginxConf).
	fieldsAddr string
	done       chan struct{} // closed when the master process has exited
	err        error         // its exit status, once done is closed
}

// nginxConf is the whole config: a master with one worker per core, as a
// real deployment runs it, and the upstream keepalive that makes nginx
// the fast hop it is. keepalive_requests is raised on both sides so that,
// like the Go paths, nginx keeps wrk's and its upstream connections for
// the whole cell instead of closing each after 1000 requests.
//
// The second server is the same hop doing the header work the daemon
// does for the OpenFaaS contract: X-Forwarded-For/-Host/-Proto, a call
// ID and a start time on the request, and the call ID, start time and
// duration on the answer. nginx's values are close in size to the
// daemon's: a 32-digit request ID (the daemon's UUID has 36 characters)
// and seconds with milliseconds (the daemon's nanoseconds have 19
// digits). The function parses each field, so this is the fair measure
// of what a proxy keeping the contract can reach.
const nginxConf = `daemon off;
master_process on;
worker_processes auto;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path {{dir}}/client_body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    keepalive_requests 1000000;

    upstream function {
        server {{upstream}};
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen {{listen}};
        location / {
            proxy_pass http://function;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    server {
        listen {{fieldsListen}};
        location / {
            proxy_pass http://function;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Call-Id $request_id;
            proxy_set_header X-Start-Time $msec;
            add_header X-Call-Id $request_id;
            add_header X-Start-Time $msec;
            add_header X-Duration-Seconds $upstream_response_time;
        }
    }
}
`

// renderNginxConf fills nginxConf in.
func renderNginxConf(dir, listen, fieldsListen, upstream string) string {
	return strings.NewReplacer("{{dir}}", dir, "{{listen}}", listen, "{{fieldsListen}}", fieldsListen,
		"{{upstream}}", upstream).Replace(nginxConf)
}

// findNginx returns nginx's path: on PATH, or where Debian puts it
// (/usr/sbin, which a user's PATH may lack).
func findNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/nginx"
	if fi, err := os.Stat(debian); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return debian, nil
	}
	return "", errNoNginx
}

// startNginx runs nginx with its own config, pid file and log in a new
// directory under the run's temporary one, listening on two free
// 127.0.0.1 ports (the plain hop, and the one adding the contract's
// fields) and proxying to upstream (host:port), and waits until both
// answer.
func (r *runner) startNginx(ctx context.Context, upstream string) (*nginxProc, error) {
	bin, err := findNginx()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(r.tmp, "nginx-")
	if err != nil {
		return nil, err
	}
	var addrs [2]string
	for i := 0; i < len(addrs); {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		if i == 0 || addrs[i] != addrs[0] {
			i++
		}
	}
	addr, fieldsAddr := addrs[0], addrs[1]
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(renderNginxConf(dir, addr, fieldsAddr, upstream)), 0o644); err != nil {
		return nil, err
	}
	// -e: the log for what nginx says before it has read the config,
	// instead of the packaged path, which may not be writable.
	args := []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")}
	if out, err := exec.CommandContext(ctx, bin, append(args, "-t")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %w\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	// Its own process group, so that stop can end the workers as well if
	// the master does not; killed with the driver, like baseproxy.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	n := &nginxProc{cmd: cmd, dir: dir, addr: addr, fieldsAddr: fieldsAddr, done: make(chan struct{})}
	go func() {
		n.err = cmd.Wait()
		close(n.done)
	}()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.done:
			cancel()
		case <-wctx.Done():
		}
	}()
	_, err = firstOK(wctx, "http://"+addr+"/", "", nil, 10*time.Millisecond, 10*time.Second)
	if err == nil {
		_, err = firstOK(wctx, "http://"+fieldsAddr+"/", "", nil, 10*time.Millisecond, 10*time.Second)
	}
	if err != nil {
		select {
		case <-n.done:
			err = fmt.Errorf("nginx exited: %v", n.err)
		default:
		}
		stopErr := n.stop()
		return nil, errors.Join(fmt.Errorf("nginx on %s: %w%s", addr, err, n.logTail()), stopErr)
	}
	logf("nginx on %s (with the contract's fields on %s), proxying to %s (%s, config %s)", addr, fieldsAddr, upstream, bin, conf)
	return n, nil
}

// pid is the master process's; its workers are its children.
func (n *nginxProc) pid() int { return n.cmd.Process.Pid }

// stop ends nginx: SIGTERM to the master, which stops its workers and
// exits; if it has not within 10 s, SIGKILL to its process group, which
// holds only this nginx.
func (n *nginxProc) stop() error {
	select {
	case <-n.done:
		return nil
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-n.pid(), syscall.SIGKILL)
	<-n.done
	return fmt.Errorf("nginx %d did not stop within 10s of SIGTERM; killed", n.pid())
}

// logTail is the end of nginx's error log, for an error message.
func (n *nginxProc) logTail() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "error.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\nnginx error.log:\n" + string(b)
}
