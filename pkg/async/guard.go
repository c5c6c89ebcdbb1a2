package async

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrCallbackNotAllowed is wrapped by Guard when a callback URL points at a
// host the operator did not allow.
var ErrCallbackNotAllowed = errors.New("callback host not allowed")

// Guard is the operator's list of hosts callbacks may go to
// (ASYNC_CALLBACK_HOSTS), so that the daemon cannot be used to reach
// addresses only it can reach. Rules are host names ("hooks.example.com"),
// suffix wildcards ("*.example.com"), IP addresses and CIDR prefixes
// ("10.1.0.0/16"). A callback goes through when its host matches a name
// rule, or when the address it actually connects to (after DNS, so a name
// cannot be pointed elsewhere later) is inside an IP or CIDR rule. The zero
// Guard allows everything, as OpenFaaS does.
type Guard struct {
	names    []string // lower case; "*.x" matches any name ending in ".x"
	prefixes []netip.Prefix
}

// ParseGuard reads a comma-separated rule list; "" allows every host.
func ParseGuard(s string) (Guard, error) {
	var g Guard
	for rule := range strings.SplitSeq(s, ",") {
		rule = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(rule)), ".")
		switch {
		case rule == "":
			continue
		case strings.Contains(rule, "/"):
			p, err := netip.ParsePrefix(rule)
			if err != nil {
				return Guard{}, fmt.Errorf("callback host rule %q: %w", rule, err)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				// Addresses are matched unmapped; so must the rule be.
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			g.prefixes = append(g.prefixes, p.Masked())
		default:
			if a, err := netip.ParseAddr(strings.Trim(rule, "[]")); err == nil {
				g.prefixes = append(g.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			name := strings.TrimPrefix(rule, "*.")
			if name == "" || strings.ContainsAny(name, "*:@ ") {
				return Guard{}, fmt.Errorf("callback host rule %q: want a host name, *.domain, an IP or a CIDR", rule)
			}
			g.names = append(g.names, rule)
		}
	}
	return g, nil
}

// Open reports whether the guard allows every host.
func (g Guard) Open() bool { return len(g.names) == 0 && len(g.prefixes) == 0 }

// String lists the rules, for logs.
func (g Guard) String() string {
	if g.Open() {
		return "any host"
	}
	rules := append([]string(nil), g.names...)
	for _, p := range g.prefixes {
		rules = append(rules, p.String())
	}
	return strings.Join(rules, ",")
}

// nameAllowed reports whether host matches a name rule.
func (g Guard) nameAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, n := range g.names {
		if suffix, ok := strings.CutPrefix(n, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == n {
			return true
		}
	}
	return false
}

// addrAllowed reports whether a is inside an IP or CIDR rule.
func (g Guard) addrAllowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Check validates a callback URL when a call is accepted: absolute http or
// https with a host, and a host the guard may let through. A name matching
// no name rule passes only when IP rules exist, because then the address
// it resolves to is checked when the callback is sent.
func (g Guard) Check(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("callback URL %q: want an absolute http or https URL", u.Redacted())
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("callback URL %q: no host", u.Redacted())
	}
	if g.Open() || g.nameAllowed(host) {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if g.addrAllowed(a) {
			return nil
		}
		return fmt.Errorf("callback URL %q: %w (ASYNC_CALLBACK_HOSTS)", u.Redacted(), ErrCallbackNotAllowed)
	}
	if len(g.prefixes) > 0 {
		return nil
	}
	return fmt.Errorf("callback URL %q: %w (ASYNC_CALLBACK_HOSTS)", u.Redacted(), ErrCallbackNotAllowed)
}

// DialContext dials like net.Dialer does, refusing connections the guard
// does not allow: to a host matching no name rule, only addresses inside
// an IP or CIDR rule are dialled, checked after resolution.
func (g Guard) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if g.Open() {
		return d.DialContext
	}
	checked := *d
	// ControlContext, because net.Dialer ignores Control when it is set;
	// the dialer's own hooks still run, after the check.
	checked.Control = nil
	checked.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !g.addrAllowed(ap.Addr()) {
			return fmt.Errorf("dial %s: %w (ASYNC_CALLBACK_HOSTS)", address, ErrCallbackNotAllowed)
		}
		switch {
		case d.ControlContext != nil:
			return d.ControlContext(ctx, network, address, c)
		case d.Control != nil:
			return d.Control(network, address, c)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil && g.nameAllowed(host) {
			return d.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
}
