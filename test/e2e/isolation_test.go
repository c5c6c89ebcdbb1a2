package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fnAddresses returns, per running container of the function, its IP on
// the function's own network.
func (d *daemon) fnAddresses(name string) (map[string]string, error) {
	cs, err := d.fnContainers(name, defaultNamespace, false)
	if err != nil {
		return nil, err
	}
	netName := d.networkName(defaultNamespace, name)
	out := map[string]string{}
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		in, err := d.docker.ContainerInspect(ctx, c.ID)
		cancel()
		if err != nil {
			return nil, err
		}
		ep, ok := in.NetworkSettings.Networks[netName]
		if !ok || ep.IPAddress == "" {
			return nil, fmt.Errorf("container %s of %s has no address on %s", short(c.ID), name, netName)
		}
		out[c.ID] = ep.IPAddress
	}
	return out, nil
}

// dialFrom asks a replica of fn (whichever the proxy picks) to open a TCP
// connection to addr, through fn-echo's /dial, and returns its answer:
// "connected" or the dial error.
func (d *daemon) dialFrom(fn, addr string) (string, error) {
	res, err := d.request(http.MethodGet, "/function/"+fn+"/dial?addr="+url.QueryEscape(addr), nil, nil, authBasic)
	if err != nil {
		return "", err
	}
	if res.Status != http.StatusOK {
		return "", fmt.Errorf("GET /function/%s/dial: %s", fn, res)
	}
	return strings.TrimSpace(string(res.Body)), nil
}

// TestFunctionsCannotReachEachOther deploys a (two replicas) and b, and from
// inside a's containers dials b's replica on b's network: that must fail.
// Dialling a's own replicas from a must succeed, which proves the dial
// itself works, so the failure means isolation.
func TestFunctionsCannotReachEachOther(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	d.deploy(simpleSpec("iso-a", img, nil, map[string]string{labelScaleMin: "2"}))
	d.deploy(simpleSpec("iso-b", img, nil, nil))
	d.waitReady("iso-a", defaultNamespace, 2)
	d.waitReady("iso-b", defaultNamespace, 1)

	var aIPs, bIPs map[string]string
	eventually(t, 30*time.Second, pollInterval, func() error {
		var err error
		if aIPs, err = d.fnAddresses("iso-a"); err != nil {
			return err
		}
		if bIPs, err = d.fnAddresses("iso-b"); err != nil {
			return err
		}
		if len(aIPs) != 2 || len(bIPs) != 1 {
			return fmt.Errorf("addresses of a %v and b %v, want 2 and 1", aIPs, bIPs)
		}
		return nil
	})
	t.Logf("a's replicas at %v, b's at %v", aIPs, bIPs)

	// Several calls, so that both of a's replicas do the dialling (the
	// proxy picks round-robin).
	const rounds = 6
	for _, ip := range aIPs {
		addr := net.JoinHostPort(ip, "8080")
		for i := 0; i < rounds; i++ {
			got, err := d.dialFrom("iso-a", addr)
			if err != nil {
				t.Fatal(err)
			}
			if got != "connected" {
				t.Errorf("a → a's replica %s (round %d): %q, want connected", addr, i, got)
			}
		}
	}
	for _, ip := range bIPs {
		addr := net.JoinHostPort(ip, "8080")
		for i := 0; i < rounds; i++ {
			got, err := d.dialFrom("iso-a", addr)
			if err != nil {
				t.Fatal(err)
			}
			if got == "connected" || got == "" {
				t.Errorf("a → b's replica %s (round %d): %q, want a dial error", addr, i, got)
			} else if i == 0 {
				t.Logf("a → b's replica %s: %s", addr, got)
			}
		}
	}
}
