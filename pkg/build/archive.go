package build

import (
	"archive/tar"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrTooLarge is Spool's error for a body over its bound (413).
var ErrTooLarge = errors.New("the request body is larger than the build size limit")

// RequestError is a request the builder refuses as it is (400): a tar that
// is not one, an entry that would escape its directory, a config that
// cannot be built.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// Spooled is a request body written to a temporary file, with its HMAC.
type Spooled struct {
	// Path is the file; Remove deletes it.
	Path string
	// Sum is the HMAC-SHA256 of the body under the payload secret.
	Sum  []byte
	Size int64
}

// Remove deletes the spooled file.
func (s *Spooled) Remove() { _ = os.Remove(s.Path) }

// Spool copies body to a new file in dir, computing its HMAC under secret
// on the way, so the body is never held in memory. A body over max bytes
// is ErrTooLarge (and nothing is left behind).
func Spool(body io.Reader, dir string, secret []byte, max int64) (*Spooled, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool build request: %w", err)
	}
	f, err := os.CreateTemp(dir, "build-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spool build request: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	n, err := io.Copy(io.MultiWriter(f, mac), io.LimitReader(body, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("spool build request: %w", err)
	case n > max:
		_ = os.Remove(f.Name())
		return nil, ErrTooLarge
	}
	return &Spooled{Path: f.Name(), Sum: mac.Sum(nil), Size: n}, nil
}

// Names of the request tar's parts, as the go-sdk builder writes them.
const (
	contextDir     = "context"
	configName     = "com.openfaas.docker.config"
	secretsName    = "com.openfaas.secrets"
	maxConfigBytes = 1 << 20
)

// readRequest reads the request tar r: the entries under context/ are
// extracted below dir, and the config entry is returned raw.
func readRequest(r io.Reader, dir string) (config []byte, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open build directory: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badRequest("the request body is not a valid tar: %v", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case name == configName:
			if config, err = io.ReadAll(io.LimitReader(tr, maxConfigBytes+1)); err != nil {
				return nil, badRequest("reading %s: %v", configName, err)
			}
			if len(config) > maxConfigBytes {
				return nil, badRequest("%s is larger than 1 MiB", configName)
			}
		case name == secretsName:
			return nil, badRequest("build secrets (%s) are not supported by this builder", secretsName)
		case name == contextDir || name == contextDir+"/":
		case strings.HasPrefix(name, contextDir+"/"):
			if err := extractEntry(root, h, strings.TrimPrefix(name, contextDir+"/"), tr); err != nil {
				return nil, err
			}
		default:
			return nil, badRequest("unexpected tar entry %q: want %s/… and %s", h.Name, contextDir, configName)
		}
	}
	if config == nil {
		return nil, badRequest("the tar has no %s", configName)
	}
	return config, nil
}

// cleanRel checks that name is a relative path that stays in its root and
// returns it cleaned ("" for the root itself).
func cleanRel(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if path.IsAbs(name) || strings.Contains(name, "\\") {
		return "", badRequest("tar entry %q: absolute paths are not allowed", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", badRequest("tar entry %q: .. is not allowed", name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// extractEntry writes one tar entry below root under rel. Writes go
// through root, which refuses to follow a symlink out of it; a symlink's
// own target must stay inside too.
func extractEntry(root *os.Root, h *tar.Header, rel string, r io.Reader) error {
	rel, err := cleanRel(rel)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil
	}
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return badRequest("tar entry %q: %v", h.Name, err)
		}
	}
	mode := fs.FileMode(h.Mode).Perm() | 0o600 // the engine must read it
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(rel, mode|0o700); err != nil {
			return badRequest("tar entry %q: %v", h.Name, err)
		}
	case tar.TypeReg:
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
		if err != nil {
			return badRequest("tar entry %q: %v", h.Name, err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract %q: %w", h.Name, err)
		}
	case tar.TypeSymlink:
		target := h.Linkname
		if path.IsAbs(target) || !inside(path.Join(path.Dir(rel), target)) {
			return badRequest("tar entry %q: symlink to %q points outside the context", h.Name, target)
		}
		if err := root.Symlink(target, rel); err != nil {
			return badRequest("tar entry %q: %v", h.Name, err)
		}
	default:
		return badRequest("tar entry %q: only files, directories and symlinks are allowed", h.Name)
	}
	return nil
}

// inside tells whether the relative path p, once cleaned, stays in its
// root.
func inside(p string) bool {
	c := path.Clean(p)
	return c != ".." && !strings.HasPrefix(c, "../") && !path.IsAbs(c)
}

// writeTar writes the tree at dir as a plain tar to w, dir's contents at
// the root; symlinks are kept as symlinks, never followed.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
