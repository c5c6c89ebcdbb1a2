// Package addresses serves every function on a dedicated address of its own
// (FUNCTION_CIDR): http://ADDRESS:PORT/ is /function/NAME.NAMESPACE/ of the
// gateway. The store keeps which function has which address; this package
// keeps one HTTP listener per function on it, opened when the function
// appears and closed, with its address released, when it is gone. Requests
// are handed to the gateway's own handler, so auth, routing and metrics are
// exactly those of /function/NAME.
package addresses

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Defaults of Config.
const (
	DefaultResync          = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	// drainTimeout bounds how long a listener closed because its function
	// went away waits for the calls it still serves.
	drainTimeout = 5 * time.Second
)

// Store is what the listeners need of the store; store.Store satisfies it.
type Store interface {
	Get(ctx context.Context, key string) (store.Function, error)
	List(ctx context.Context, namespace string) ([]store.Function, error)
	Watch(ctx context.Context, opts ...store.WatchOption) *store.Watcher
	AllocateAddress(ctx context.Context, key string, prefix netip.Prefix) (netip.Addr, error)
	ReleaseAddress(ctx context.Context, key string) error
	ListAddresses(ctx context.Context) ([]store.AddressAllocation, error)
}

var _ Store = store.Store(nil)

// Config configures a Manager. Prefix and Port are required.
type Config struct {
	// Prefix is the IPv4 CIDR addresses are allocated from (ParsePrefix).
	Prefix netip.Prefix
	// Port is the port every address is served on.
	Port int
	// Resync is the period of the full pass that also retries listeners
	// that could not bind; 0 means DefaultResync.
	Resync time.Duration
	// The listeners' HTTP server timeouts, as the gateway's own server has
	// them (0: none).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop at the end of Run; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Log receives what happens to listeners; nil means logrus' standard
	// logger.
	Log logrus.FieldLogger
}

// ParsePrefix parses FUNCTION_CIDR: an IPv4 CIDR with at least two usable
// addresses (a /30 or wider), returned masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	if _, _, err := store.UsableAddresses(p); err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// Manager keeps one listener per function on the function's address.
// Its state is changed by the Run loop only (and by Stop); Served may be
// called from anywhere.
type Manager struct {
	cfg     Config
	st      Store
	handler http.Handler
	log     logrus.FieldLogger

	mu      sync.Mutex
	served  map[string]*listener // function key → its open listener
	stopped bool
	drains  sync.WaitGroup // listeners closed, still finishing their calls
}

// listener is one function's address being served.
type listener struct {
	addr netip.AddrPort
	ln   net.Listener
	srv  *http.Server
}

// New returns a Manager that serves functions of st through handler, the
// gateway's root handler (the one its main server serves).
func New(cfg Config, st Store, handler http.Handler) (*Manager, error) {
	if _, _, err := store.UsableAddresses(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("function addresses: %w", err)
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("function addresses: port %d out of range", cfg.Port)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	cfg.Prefix = cfg.Prefix.Masked()
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Manager{
		cfg:     cfg,
		st:      st,
		handler: handler,
		log:     log.WithField("component", "addresses"),
		served:  make(map[string]*listener),
	}, nil
}

// Served returns the address each function is served on now.
func (m *Manager) Served() map[string]netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]netip.AddrPort, len(m.served))
	for k, l := range m.served {
		out[k] = l.addr
	}
	return out
}

// Run serves until ctx is done, then stops gracefully (Stop, bounded by
// Config.ShutdownTimeout). Changes of the store's functions are followed
// as they are committed; a full pass every Config.Resync catches anything
// else (a listener that could not bind, a deleted function's leftover
// allocation). It returns nil once everything is closed.
func (m *Manager) Run(ctx context.Context) error {
	store.Follow(ctx, m.st.Watch, m.cfg.Resync, m.resync, func(ctx context.Context, keys []string) {
		for _, k := range keys {
			m.syncKey(ctx, k)
		}
	})
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.ShutdownTimeout)
	defer cancel()
	if err := m.Stop(stopCtx); err != nil {
		m.log.WithError(err).Warn("function addresses: calls cut off at shutdown")
	}
	return nil
}

// Stop closes every listener, letting the calls they serve finish until
// ctx is done (then they are cut off and ctx's error is returned). The
// addresses stay allocated: the next start serves them again. After Stop
// nothing is served any more.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	all := m.served
	m.served = make(map[string]*listener)
	m.mu.Unlock()

	errs := make(chan error, len(all))
	for _, l := range all {
		go func() { errs <- shutdown(ctx, l) }()
	}
	var err error
	for range all {
		err = errors.Join(err, <-errs)
	}
	drained := make(chan struct{})
	go func() {
		m.drains.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// shutdown stops l gracefully within ctx, then cuts off what is left.
func shutdown(ctx context.Context, l *listener) error {
	if err := l.srv.Shutdown(ctx); ctx.Err() != nil {
		_ = l.srv.Close()
		return err
	}
	// Any other error only says that drop closed the listener first.
	return nil
}

// resync is the full pass: listeners of functions gone are closed and
// their addresses released, every function is served, and allocations no
// function owns any more are released.
func (m *Manager) resync(ctx context.Context) {
	fns, err := m.st.List(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			m.log.WithError(err).Warn("function addresses: cannot list functions; trying again at the next resync")
		}
		return
	}
	allocs, err := m.st.ListAddresses(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.WithError(err).Warn("function addresses: cannot list allocations; trying again at the next resync")
		}
		return
	}
	alive := make(map[string]bool, len(fns))
	for _, f := range fns {
		alive[f.Key()] = true
	}
	// Gone first, so that a freed address is closed before anyone else can
	// be given it.
	for key := range m.Served() {
		if !alive[key] {
			m.remove(ctx, key)
		}
	}
	held := make(map[string]netip.Addr, len(allocs))
	for _, a := range allocs {
		if !alive[a.Key] {
			m.release(ctx, a.Key)
			continue
		}
		held[a.Key] = a.Address
	}
	for _, f := range fns {
		m.ensure(ctx, f.Key(), held[f.Key()], true)
	}
}

// syncKey brings one changed key up to date: served while its function
// exists, closed and released once it does not.
func (m *Manager) syncKey(ctx context.Context, key string) {
	if _, _, secret := store.SplitSecretWatchKey(key); secret {
		return
	}
	_, err := m.st.Get(ctx, key)
	switch {
	case err == nil:
		m.ensure(ctx, key, netip.Addr{}, false)
	case errors.Is(err, store.ErrNotFound):
		m.remove(ctx, key)
	case ctx.Err() == nil:
		m.log.WithError(err).WithField("function", key).Warn("function addresses: cannot read the function; trying again at the next resync")
	}
}

// ensure serves key on its address. When known, held is the address its
// allocation holds (zero: none), as the resync read it; a function served
// on it costs no write. Otherwise a served function is left as it is: its
// allocation is written by this Manager only, so it cannot have changed.
func (m *Manager) ensure(ctx context.Context, key string, held netip.Addr, known bool) {
	m.mu.Lock()
	cur, stopped := m.served[key], m.stopped
	m.mu.Unlock()
	if stopped {
		return
	}
	if cur != nil && (!known || held == cur.addr.Addr()) && m.cfg.Prefix.Contains(cur.addr.Addr()) {
		return
	}
	log := m.log.WithField("function", key)
	addr, err := m.st.AllocateAddress(ctx, key, m.cfg.Prefix)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return // deleted meanwhile: its change is on its way
	case err != nil:
		if ctx.Err() == nil {
			log.WithError(err).Warn("function addresses: no address for the function; trying again at the next resync")
		}
		return
	}
	if cur != nil {
		if cur.addr.Addr() == addr {
			return
		}
		m.drop(key, cur)
	}
	if err := m.open(key, netip.AddrPortFrom(addr, uint16(m.cfg.Port))); err != nil {
		log.WithError(err).WithField("address", addr.String()).Warn("function addresses: cannot listen on the function's address; trying again at the next resync")
	}
}

// remove closes key's listener, if any, then releases its address.
func (m *Manager) remove(ctx context.Context, key string) {
	m.mu.Lock()
	cur := m.served[key]
	m.mu.Unlock()
	if cur != nil {
		m.drop(key, cur)
	}
	m.release(ctx, key)
}

// release frees key's allocation; it runs only once nothing listens on it.
func (m *Manager) release(ctx context.Context, key string) {
	if err := m.st.ReleaseAddress(ctx, key); err != nil && ctx.Err() == nil {
		m.log.WithError(err).WithField("function", key).Warn("function addresses: cannot release the address; trying again at the next resync")
	}
}

// open starts serving key on addr.
func (m *Manager) open(key string, addr netip.AddrPort) error {
	ns, name, err := store.SplitKey(key)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           Rewrite(m.handler, name, ns),
		ReadHeaderTimeout: m.cfg.ReadHeaderTimeout,
		ReadTimeout:       m.cfg.ReadTimeout,
		WriteTimeout:      m.cfg.WriteTimeout,
		IdleTimeout:       m.cfg.IdleTimeout,
	}
	l := &listener{addr: addr, ln: ln, srv: srv}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return ln.Close()
	}
	m.served[key] = l
	m.mu.Unlock()
	go func() {
		// Serve ends with ErrServerClosed (Stop) or the listener's own
		// close (drop); neither is news.
		_ = srv.Serve(ln)
	}()
	m.log.WithFields(logrus.Fields{"function": key, "address": addr.String()}).Info("function addresses: serving the function on its address")
	return nil
}

// drop stops serving key on l: the listening socket is closed at once, so
// the address may be bound again right away; calls under way finish in the
// background (bounded by drainTimeout; Stop waits for them).
func (m *Manager) drop(key string, l *listener) {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return // Stop took every listener, l included
	}
	if m.served[key] == l {
		delete(m.served, key)
	}
	m.drains.Add(1)
	m.mu.Unlock()
	_ = l.ln.Close()
	go func() {
		defer m.drains.Done()
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		_ = shutdown(ctx, l)
	}()
	m.log.WithFields(logrus.Fields{"function": key, "address": l.addr.String()}).Info("function addresses: stopped serving the function on its address")
}

// Rewrite returns a handler that serves every request as one to
// /function/NAME.NAMESPACE followed by the request's own path (the query
// kept) through next, the gateway's root handler.
func Rewrite(next http.Handler, name, namespace string) http.Handler {
	prefix := "/function/" + name + "." + namespace
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/") {
			// OPTIONS * and the like name no path of the function.
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		u := *r.URL
		u.Path = prefix + r.URL.Path
		if r.URL.RawPath != "" {
			u.RawPath = prefix + r.URL.RawPath
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = &u
		r2.RequestURI = u.RequestURI()
		next.ServeHTTP(w, r2)
	})
}
