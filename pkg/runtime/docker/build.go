package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

var _ runtime.Builder = (*Runtime)(nil)

// RoleBuildTest is the engine.LabelRole of the containers and networks a
// build's test runs on. They carry the instance labels but no function
// labels, so nothing that manages replicas ever looks at them.
const RoleBuildTest = "build-test"

// Bounds of a build's test when the request sets none.
const (
	defaultTestReady   = 30 * time.Second
	defaultTestTimeout = 30 * time.Second
	// testBodyMax is how much of the answer is kept.
	testBodyMax = 4 << 10
)

// Build implements runtime.Builder with the engine's own (classic) build.
func (r *Runtime) Build(ctx context.Context, req runtime.BuildRequest, emit func(string)) error {
	be, ok := r.eng.(engine.BuildEngine)
	if !ok {
		return runtime.NotSupported("build")
	}
	err := be.BuildImage(ctx, req.Context, engine.BuildOptions{Tag: req.Image, BuildArgs: req.BuildArgs, Labels: req.Labels}, emit)
	var bErr *engine.BuildError
	if errors.As(err, &bErr) {
		return fmt.Errorf("%w: %s", runtime.ErrBuildFailed, bErr.Message)
	}
	return err
}

// Platform implements runtime.Builder.
func (r *Runtime) Platform(ctx context.Context) (string, error) {
	be, ok := r.eng.(engine.BuildEngine)
	if !ok {
		return "", runtime.NotSupported("build")
	}
	return be.Platform(ctx)
}

// TestImage implements runtime.Builder. The container gets a network of
// its own, so the test reaches nothing but it (and the daemon joins that
// network when it runs in a container, as it does function networks).
func (r *Runtime) TestImage(ctx context.Context, req runtime.ImageTest) (runtime.ImageTestResult, error) {
	if req.Ready <= 0 {
		req.Ready = defaultTestReady
	}
	if req.Timeout <= 0 {
		req.Timeout = defaultTestTimeout
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	labels := r.instanceLabels()
	labels[engine.LabelRole] = RoleBuildTest
	netName := fmt.Sprintf("%s-build-%s", r.cfg.NetworkPrefix, suffix)

	netID, err := r.eng.CreateNetwork(ctx, netName, labels)
	if err != nil {
		return runtime.ImageTestResult{}, fmt.Errorf("build test: create network: %w", err)
	}
	// Cleanup runs whatever ctx says: the build may have timed out.
	cleanup := context.WithoutCancel(ctx)
	defer func() {
		if err := r.eng.RemoveNetwork(cleanup, netID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			r.cfg.Log.WithError(err).WithField("network", netName).Warn("build test: network not removed")
		}
	}()
	if r.cfg.Self != "" {
		if err := r.eng.ConnectNetwork(ctx, netID, r.cfg.Self); err != nil && !errors.Is(err, engine.ErrConflict) {
			return runtime.ImageTestResult{}, fmt.Errorf("build test: join network: %w", err)
		}
		defer func() { _ = r.eng.DisconnectNetwork(cleanup, netID, r.cfg.Self) }()
	}
	id, err := r.eng.CreateContainer(ctx, engine.ContainerSpec{
		Name:      fmt.Sprintf("%s-build-%s", r.cfg.Instance, suffix),
		Image:     req.Image,
		Labels:    labels,
		Network:   netName,
		PidsLimit: r.cfg.PidsLimit,
	})
	if err != nil {
		return runtime.ImageTestResult{}, fmt.Errorf("build test: create container: %w", err)
	}
	defer func() {
		if err := r.eng.RemoveContainer(cleanup, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			r.cfg.Log.WithError(err).WithField("container", engine.ShortID(id)).Warn("build test: container not removed")
		}
	}()
	if err := r.eng.StartContainer(ctx, id); err != nil {
		return runtime.ImageTestResult{}, fmt.Errorf("build test: start container: %w", err)
	}
	addr, err := r.waitTestContainer(ctx, id, netName, labels, req.Ready)
	if err != nil {
		return runtime.ImageTestResult{}, err
	}
	return sendTest(ctx, addr, req)
}

// waitTestContainer waits, up to bound, until the container answers HTTP
// on 8080: /_/health answering anything but 503 (a watchdog not ready
// yet), or a connection accepted by a server without it. It returns
// host:port.
func (r *Runtime) waitTestContainer(ctx context.Context, id, netName string, labels map[string]string, bound time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Second}
	addr := ""
	for {
		if addr == "" {
			cs, err := r.eng.ListContainers(ctx, labels)
			if err == nil {
				for _, c := range cs {
					if c.ID != id {
						continue
					}
					if c.State == engine.StateExited || c.State == engine.StateDead {
						return "", errors.New("build test: the container exited before it answered on port 8080")
					}
					if ip := c.Networks[netName]; ip != "" {
						addr = net.JoinHostPort(ip, "8080")
					}
				}
			}
		}
		if addr != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/_/health", nil)
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					return addr, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if addr == "" {
				return "", fmt.Errorf("build test: the container got no address within %s", bound)
			}
			return "", fmt.Errorf("build test: nothing answered on port 8080 within %s", bound)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sendTest sends the test's request to addr and reads the answer.
func sendTest(ctx context.Context, addr string, t runtime.ImageTest) (runtime.ImageTestResult, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	path := t.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(t.Body))
	if err != nil {
		return runtime.ImageTestResult{}, fmt.Errorf("build test: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return runtime.ImageTestResult{}, fmt.Errorf("build test: request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, testBodyMax))
	if err != nil {
		return runtime.ImageTestResult{Status: resp.StatusCode, Body: body}, fmt.Errorf("build test: reading the answer: %w", err)
	}
	return runtime.ImageTestResult{Status: resp.StatusCode, Body: body}, nil
}

// SweepBuildTests removes the containers and networks of build tests that
// an earlier daemon left (it died while a test ran). Call it once at start,
// before any build: a test under way would lose its container.
func (r *Runtime) SweepBuildTests(ctx context.Context) error {
	labels := r.instanceLabels()
	labels[engine.LabelRole] = RoleBuildTest
	cs, err := r.eng.ListContainers(ctx, labels)
	if err != nil {
		return fmt.Errorf("list build test containers: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if err := r.eng.RemoveContainer(ctx, c.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		r.cfg.Log.WithField("container", c.Name).Info("removed the container of a build test an earlier daemon left")
	}
	nets, err := r.eng.ListNetworks(ctx, labels)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list build test networks: %w", err))...)
	}
	for _, n := range nets {
		if err := r.leaveSelf(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.eng.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
