package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Gateway is what push needs of a dockerfaasd gateway.
type Gateway interface {
	// LoadImages streams a `docker save` archive (gzip when gzipped) to
	// POST /system/images and returns the images the engine loaded.
	LoadImages(ctx context.Context, archive io.Reader, gzipped bool) ([]LoadedImage, error)
	// Deploy creates or updates a function the way faas-cli deploy does
	// (PUT, then POST when the PUT is a 404) and returns the answer's status
	// line.
	Deploy(ctx context.Context, spec types.FunctionDeployment) (string, error)
}

// LoadedImage is one image the gateway's engine loaded.
type LoadedImage struct {
	Ref  string `json:"ref"`
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// StatusError is a gateway answer other than success, with the server's
// message.
type StatusError struct {
	Op      string // what was asked, e.g. "loading the image"
	Code    int
	Message string // the server's body, trimmed
	Hint    string // what the user can do, when we know
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the gateway answered %d %s", e.Op, e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// HTTPGateway talks to a gateway over HTTP(S).
type HTTPGateway struct {
	// URL is the gateway's base URL (no trailing slash).
	URL *url.URL
	// Client sends the requests; see NewHTTPClient.
	Client *http.Client
	// Credentials authenticate every request.
	Credentials Credentials
	// Timeout bounds each deploy request; the archive upload is bounded
	// only by ctx, as an image may take long to send.
	Timeout time.Duration
}

var _ Gateway = (*HTTPGateway)(nil)

// NewHTTPClient returns a client for the gateway: system roots (on Linux
// SSL_CERT_FILE and SSL_CERT_DIR are honoured by Go), or no verification
// with tlsNoVerify as faas-cli's --tls-no-verify; dialTimeout bounds
// connecting and the TLS handshake.
func NewHTTPClient(tlsNoVerify bool, dialTimeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = dialTimeout
	if tlsNoVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --tls-no-verify
	}
	return &http.Client{Transport: tr}
}

// maxErrorBody bounds how much of an error answer is read and shown.
const maxErrorBody = 4 << 10

// LoadImages implements Gateway.
func (g *HTTPGateway) LoadImages(ctx context.Context, archive io.Reader, gzipped bool) ([]LoadedImage, error) {
	const op = "loading the image"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.endpoint("/system/images"), io.NopCloser(archive))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.ContentLength = -1 // streamed: chunked, never buffered
	if gzipped {
		req.Header.Set("Content-Type", "application/gzip")
	} else {
		req.Header.Set("Content-Type", "application/x-tar")
	}
	// No Expect: 100-continue, though it would spare the bytes sent before
	// a 401 or 501: Go's server then closes a connection whose body it did
	// not read without its RST-avoidance delay, and a 413 sent mid-stream
	// is often lost to a connection reset (seen 7 times in 30).
	req.Header.Set("Accept", "application/json")
	res, err := g.do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer drain(res.Body)
	if res.StatusCode != http.StatusOK {
		return nil, g.statusError(op, res)
	}
	var out struct {
		Images []LoadedImage `json:"images"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: the gateway's answer is not the expected JSON: %w", op, err)
	}
	return out.Images, nil
}

// Deploy implements Gateway.
func (g *HTTPGateway) Deploy(ctx context.Context, spec types.FunctionDeployment) (string, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("deploying %s: %w", spec.Service, err)
	}
	status, code, err := g.deployOnce(ctx, http.MethodPut, body, spec.Service)
	if err == nil || code != http.StatusNotFound {
		return status, err
	}
	status, _, err = g.deployOnce(ctx, http.MethodPost, body, spec.Service)
	return status, err
}

func (g *HTTPGateway) deployOnce(ctx context.Context, method string, body []byte, name string) (string, int, error) {
	op := "deploying " + name
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, g.endpoint("/system/functions"), bytes.NewReader(body))
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := g.do(req)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", op, err)
	}
	defer drain(res.Body)
	switch res.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted:
		return res.Status, res.StatusCode, nil
	}
	return "", res.StatusCode, g.statusError(op, res)
}

func (g *HTTPGateway) endpoint(path string) string {
	return strings.TrimRight(g.URL.String(), "/") + path
}

func (g *HTTPGateway) do(req *http.Request) (*http.Response, error) {
	c := g.Credentials
	switch {
	case c.Password != "" || c.Username != "":
		req.SetBasicAuth(c.Username, c.Password)
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := g.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// The url.Error repeats method and URL; keep its cause.
			err = uerr.Err
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	return res, nil
}

// statusError reads the server's message and adds what to do for the
// answers we know.
func (g *HTTPGateway) statusError(op string, res *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	e := &StatusError{Op: op, Code: res.StatusCode, Message: strings.TrimSpace(string(msg))}
	switch res.StatusCode {
	case http.StatusUnauthorized:
		if g.Credentials.Source == "" {
			e.Hint = "no credentials: run faas-cli login for " + g.URL.String() + " or pass --password-stdin"
		} else {
			e.Hint = "credentials from " + g.Credentials.Source + " were refused"
		}
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		if strings.HasSuffix(res.Request.URL.Path, "/system/images") {
			e.Hint = "this gateway cannot load images: is it dockerfaasd, and recent enough?"
		}
	case http.StatusNotImplemented:
		e.Hint = "this gateway's runtime cannot load images; load them into every node instead"
	}
	return e
}

// drain reads what is left of a body (bounded) so the connection can be
// reused, then closes it.
func drain(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	_ = rc.Close()
}
