// Package routes serves functions at the path routes their annotation
// io.dockerfaas.route gives them (/sum → the function sum): a route table
// kept from the store's functions, and a handler that serves a request
// under a route as /function/NAME.NAMESPACE/REST through the gateway's own
// root handler, so auth, timeouts and metrics are exactly those of
// /function/NAME.
//
// The API refuses a route another function has, but two deploys racing
// can both pass that check. The table resolves such a collision the same
// way every time: the function created first (then the smaller key) gets
// the route; the other is logged, listed with an error and not served.
package routes

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// DefaultResync is the period of the full pass when Config.Resync is 0.
const DefaultResync = 30 * time.Second

// Store is what the table needs of the store; store.Store satisfies it.
type Store interface {
	Get(ctx context.Context, key string) (store.Function, error)
	List(ctx context.Context, namespace string) ([]store.Function, error)
	Watch(ctx context.Context, opts ...store.WatchOption) *store.Watcher
}

var _ Store = store.Store(nil)

// Config configures a Table.
type Config struct {
	// Resync is the period of the full pass that catches anything a missed
	// change left behind; 0 means DefaultResync.
	Resync time.Duration
	// Log receives collisions and read errors; nil means logrus' standard
	// logger.
	Log logrus.FieldLogger
}

// claim is one function's route as its record says.
type claim struct {
	route   string
	created time.Time
	invalid error // the annotation cannot be read: never served
}

// target is the function a served route goes to.
type target struct {
	key    string
	prefix string // "/function/NAME.NAMESPACE"
}

// snapshot is an immutable routing table; requests read it lock-free.
type snapshot struct {
	served map[string]target // route → function
	list   []faas.Route      // every claim, sorted by path then key
}

// Table is the route table. Its claims are changed by Run only; Lookup,
// Routes and the handler read the published snapshot.
type Table struct {
	cfg Config
	st  Store
	log logrus.FieldLogger

	mu     sync.Mutex       // guards claims and the publishing of snap
	claims map[string]claim // function key → its route
	snap   atomic.Pointer[snapshot]
}

// New returns an empty Table that follows the functions of st once Run.
func New(cfg Config, st Store) *Table {
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	t := &Table{cfg: cfg, st: st, log: log.WithField("component", "routes"), claims: make(map[string]claim)}
	t.snap.Store(&snapshot{served: map[string]target{}})
	return t
}

// Run follows the store until ctx is done: committed changes as they come,
// and a full pass every Config.Resync (as pkg/addresses does). It returns
// nil when ctx is done.
func (t *Table) Run(ctx context.Context) error {
	store.Follow(ctx, t.st.Watch, t.cfg.Resync, t.Resync, t.Sync)
	return nil
}

// Resync replaces every claim with what the store's functions say now.
func (t *Table) Resync(ctx context.Context) {
	fns, err := t.st.List(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			t.log.WithError(err).Warn("routes: cannot list functions; trying again at the next resync")
		}
		return
	}
	claims := make(map[string]claim, len(fns))
	for _, f := range fns {
		if c, ok := claimOf(f); ok {
			claims[f.Key()] = c
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.claims = claims
	t.publish()
}

// Sync brings the claims of the changed keys up to date.
func (t *Table) Sync(ctx context.Context, keys []string) {
	changed := false
	for _, key := range keys {
		if _, _, secret := store.SplitSecretWatchKey(key); secret {
			continue
		}
		f, err := t.st.Get(ctx, key)
		var c claim
		has := false
		switch {
		case err == nil:
			c, has = claimOf(f)
		case errors.Is(err, store.ErrNotFound):
		default:
			if ctx.Err() == nil {
				t.log.WithError(err).WithField("function", key).Warn("routes: cannot read the function; trying again at the next resync")
			}
			continue
		}
		t.mu.Lock()
		old, had := t.claims[key]
		if has {
			t.claims[key] = c
		} else {
			delete(t.claims, key)
		}
		t.mu.Unlock()
		changed = changed || had != has || old.route != c.route || !old.created.Equal(c.created)
	}
	if changed {
		t.mu.Lock()
		t.publish()
		t.mu.Unlock()
	}
}

// claimOf reads f's route claim; ok is false when f has none.
func claimOf(f store.Function) (claim, bool) {
	if f.Spec.Annotations == nil {
		return claim{}, false
	}
	if _, ok := (*f.Spec.Annotations)[faas.AnnotationRoute]; !ok {
		return claim{}, false
	}
	r, err := faas.RouteOf(*f.Spec.Annotations)
	if err != nil {
		// Stored before routes were validated, or by hand: listed, not served.
		return claim{route: (*f.Spec.Annotations)[faas.AnnotationRoute], created: f.CreatedAt, invalid: err}, true
	}
	return claim{route: r, created: f.CreatedAt}, true
}

// publish builds the next snapshot from the claims; t.mu is held.
func (t *Table) publish() {
	keys := make([]string, 0, len(t.claims))
	for k := range t.claims {
		keys = append(keys, k)
	}
	// The function created first, then the smaller key, wins a route.
	slices.SortFunc(keys, func(a, b string) int {
		ca, cb := t.claims[a], t.claims[b]
		if c := ca.created.Compare(cb.created); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	old := t.snap.Load()
	next := &snapshot{served: make(map[string]target, len(keys)), list: make([]faas.Route, 0, len(keys))}
	for _, k := range keys {
		c := t.claims[k]
		ns, name, err := store.SplitKey(k)
		if err != nil {
			continue
		}
		r := faas.Route{Path: c.route, Function: name, Namespace: ns}
		switch winner, taken := next.served[c.route]; {
		case c.invalid != nil:
			r.Error = c.invalid.Error()
		case taken:
			r.Error = "route taken by " + winner.key + ", created first"
			if !old.refused(k, c.route) {
				t.log.WithFields(logrus.Fields{"function": k, "route": c.route, "owner": winner.key}).
					Warn("routes: two functions claim the same route; serving the one created first")
			}
		default:
			next.served[c.route] = target{key: k, prefix: "/function/" + name + "." + ns}
		}
		next.list = append(next.list, r)
	}
	slices.SortFunc(next.list, func(a, b faas.Route) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Function, b.Function))
	})
	t.snap.Store(next)
}

// refused reports whether the snapshot lists key's claim of route as not
// served, so that a collision is logged once, not on every publish.
func (s *snapshot) refused(key, route string) bool {
	for _, r := range s.list {
		if r.Error != "" && r.Path == route && faas.Key(r.Namespace, r.Function) == key {
			return true
		}
	}
	return false
}

// Routes lists every route claimed, served or not (Route.Error says why
// not), sorted by path.
func (t *Table) Routes() []faas.Route {
	return slices.Clone(t.snap.Load().list)
}

// Lookup finds the route p is the path of or under, the longest one when
// several match, and returns the function it serves (its key) and the
// rest of p after the route ("" for the route itself).
func (t *Table) Lookup(p string) (key, rest string, ok bool) {
	tg, rest, ok := t.snap.Load().lookup(p)
	return tg.key, rest, ok
}

func (s *snapshot) lookup(p string) (target, string, bool) {
	if len(s.served) == 0 || !strings.HasPrefix(p, "/") {
		return target{}, "", false
	}
	// Longest first: p itself, then each shorter prefix ending before a
	// '/', so that a route matches on segment boundaries only. No route
	// is longer than faas.MaxRouteLen.
	end := len(p)
	for end > 0 {
		if end <= faas.MaxRouteLen {
			if tg, ok := s.served[p[:end]]; ok {
				return tg, p[end:], true
			}
		}
		end = strings.LastIndexByte(p[:end], '/')
	}
	return target{}, "", false
}

// Handler returns the handler that serves routes in front of root, the
// gateway's root handler: a request whose path is a route or under it is
// handed to root as /function/NAME.NAMESPACE/REST (the query kept); any
// other goes to root as it is. A route can never be one of the gateway's
// own paths (faas.ReservedRoutes), so those are not even looked up: a
// route is only consulted for paths no other route of the gateway serves.
func (t *Table) Handler(root http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reserved(r.URL.Path) {
			root.ServeHTTP(w, r)
			return
		}
		tg, rest, ok := t.snap.Load().lookup(r.URL.Path)
		if !ok {
			root.ServeHTTP(w, r)
			return
		}
		root.ServeHTTP(w, rewrite(r, tg.prefix, rest))
	})
}

// reserved reports whether p is under one of the gateway's own prefixes.
func reserved(p string) bool {
	for _, r := range faas.ReservedRoutes {
		if faas.UnderRoute(p, r) {
			return true
		}
	}
	return false
}

// rewrite returns a shallow copy of r for prefix+rest ("/" when rest is
// empty), keeping the query and, when it maps cleanly, the escaped form of
// the rest.
func rewrite(r *http.Request, prefix, rest string) *http.Request {
	if rest == "" {
		rest = "/"
	}
	u := *r.URL
	u.Path = prefix + rest
	u.RawPath = ""
	if r.URL.RawPath != "" {
		if raw, ok := rawRest(r.URL.RawPath, len(r.URL.Path)-len(rest)); ok {
			if raw == "" {
				raw = "/"
			}
			// Kept only when it differs from Path's own escaping, as
			// url.URL itself keeps it.
			if plain := (&url.URL{Path: u.Path}).EscapedPath(); plain != prefix+raw {
				u.RawPath = prefix + raw
			}
		}
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = &u
	r2.RequestURI = u.RequestURI()
	return r2
}

// rawRest finds, in the escaped path raw, the rest after the route, whose
// decoded form is routeLen bytes long. Routes hold only unreserved
// characters and '/', but a client may still escape them (%73um): the
// route's segments are then counted in raw and their decoded form checked.
// ok is false when raw does not map onto the route cleanly (an escaped '/'
// in it); the rest is then sent in its decoded form only.
func rawRest(raw string, routeLen int) (string, bool) {
	if routeLen <= 0 || routeLen > len(raw) {
		return "", false
	}
	// The route ends where raw's next '/' is after as many bytes decode to
	// routeLen: walk raw segment by segment.
	end := 0
	for {
		next := strings.IndexByte(raw[end+1:], '/')
		if next < 0 {
			end = len(raw)
		} else {
			end += 1 + next
		}
		dec, err := url.PathUnescape(raw[:end])
		if err != nil || len(dec) > routeLen {
			return "", false
		}
		if len(dec) == routeLen {
			return raw[end:], true
		}
		if end == len(raw) {
			return "", false
		}
	}
}
