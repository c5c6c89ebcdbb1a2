package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// LangDockerfile is the language whose handler folder is the whole build
// context, as in faas-cli: no template is copied.
const LangDockerfile = "dockerfile"

// defaultHandlerFolder is where a template takes the handler when its
// template.yml names no handler_folder (faas-cli's default).
const defaultHandlerFolder = "function"

// ErrTemplateNotFound is the error for a language with no template.
var ErrTemplateNotFound = errors.New("template not found")

// langName is what a template's name may be: one path element, no dots
// first, so neither "." nor ".." nor hidden names.
var langName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidLang tells whether lang can name a template.
func ValidLang(lang string) bool { return langName.MatchString(lang) }

// Templates is the directory of server-side language templates, in
// faas-cli's layout: <lang>/Dockerfile, <lang>/template.yml (its
// handler_folder), <lang>/function/ and whatever else the template needs.
type Templates struct {
	Dir string
}

// Template is one template as GET /system/templates lists it.
type Template struct {
	Name string `json:"name"`
	// HandlerFolder is where a build puts the handler.
	HandlerFolder string `json:"handlerFolder"`
	Language      string `json:"language,omitempty"`
}

// templateYAML is the part of template.yml the builder reads.
type templateYAML struct {
	Language      string `yaml:"language"`
	HandlerFolder string `yaml:"handler_folder"`
}

// List returns the templates, sorted by name (none when the directory does
// not exist).
func (t *Templates) List() ([]Template, error) {
	ents, err := os.ReadDir(t.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Template{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out := []Template{}
	for _, e := range ents {
		if !e.IsDir() || !ValidLang(e.Name()) {
			continue
		}
		tpl, err := t.Get(e.Name())
		if err != nil {
			continue
		}
		out = append(out, tpl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns the template lang (ErrTemplateNotFound when there is none
// with a Dockerfile).
func (t *Templates) Get(lang string) (Template, error) {
	if !ValidLang(lang) {
		return Template{}, fmt.Errorf("template %q: %w", lang, ErrTemplateNotFound)
	}
	return readTemplate(filepath.Join(t.Dir, lang), lang)
}

// readTemplate reads the template in dir, named lang.
func readTemplate(dir, lang string) (Template, error) {
	if fi, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil || !fi.Mode().IsRegular() {
		return Template{}, fmt.Errorf("template %q: %w", lang, ErrTemplateNotFound)
	}
	tpl := Template{Name: lang, HandlerFolder: defaultHandlerFolder}
	raw, err := os.ReadFile(filepath.Join(dir, "template.yml"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Template{}, fmt.Errorf("template %q: %w", lang, err)
	}
	if err == nil {
		var y templateYAML
		if err := yaml.Unmarshal(raw, &y); err != nil {
			return Template{}, fmt.Errorf("template %q: template.yml: %w", lang, err)
		}
		tpl.Language = y.Language
		if y.HandlerFolder != "" {
			hf, err := cleanRel(y.HandlerFolder)
			if err != nil || hf == "" {
				return Template{}, fmt.Errorf("template %q: handler_folder %q must be a folder inside the template", lang, y.HandlerFolder)
			}
			tpl.HandlerFolder = hf
		}
	}
	return tpl, nil
}

// Put replaces the template lang with the tree in archive, a plain tar of
// the template directory: its entries at the root ("Dockerfile",
// "template.yml", "function/…") or under "<lang>/" or "template/<lang>/".
// It must hold a Dockerfile. The old template stays until the new one is
// complete.
func (t *Templates) Put(lang string, archive io.Reader) error {
	if !ValidLang(lang) || lang == LangDockerfile {
		return badRequest("invalid template name %q", lang)
	}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return fmt.Errorf("templates directory: %w", err)
	}
	tmp, err := os.MkdirTemp(t.Dir, ".upload-")
	if err != nil {
		return fmt.Errorf("templates directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("templates directory: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(archive)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return badRequest("the body is not a valid tar: %v", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		for _, p := range []string{"template/" + lang + "/", lang + "/"} {
			if rest, ok := strings.CutPrefix(name, p); ok {
				name = rest
				break
			}
		}
		if name == "template" || name == "template/" || strings.TrimSuffix(name, "/") == lang {
			continue
		}
		if err := extractEntry(root, h, name, tr); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(filepath.Join(tmp, "Dockerfile")); err != nil || !fi.Mode().IsRegular() {
		return badRequest("template %q has no Dockerfile", lang)
	}
	// template.yml is checked before the template replaces anything.
	if _, err := readTemplate(tmp, lang); err != nil {
		return badRequest("%v", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	final := filepath.Join(t.Dir, lang)
	old := final + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace template %q: %w", lang, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Rename(old, final)
		return fmt.Errorf("replace template %q: %w", lang, err)
	}
	_ = os.RemoveAll(old)
	return nil
}

// Delete removes the template lang (ErrTemplateNotFound when absent).
func (t *Templates) Delete(lang string) error {
	if _, err := t.Get(lang); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(t.Dir, lang))
}

// Assemble builds the context in dst from the handler folder handler the
// way faas-cli does: the template lang copied to dst, then every entry of
// handler but "build" and "template" copied over into the template's
// handler folder. lang LangDockerfile is the handler itself as the context
// (same skipping), no template.
func (t *Templates) Assemble(lang, handler, dst string) error {
	handlerDst := dst
	if lang != LangDockerfile {
		tpl, err := t.Get(lang)
		if err != nil {
			return err
		}
		if err := copyTree(filepath.Join(t.Dir, lang), dst); err != nil {
			return fmt.Errorf("copy template %q: %w", lang, err)
		}
		handlerDst = filepath.Join(dst, filepath.FromSlash(tpl.HandlerFolder))
	}
	ents, err := os.ReadDir(handler)
	if err != nil {
		return fmt.Errorf("read handler: %w", err)
	}
	for _, e := range ents {
		if e.Name() == "build" || e.Name() == "template" {
			continue
		}
		if err := copyTree(filepath.Join(handler, e.Name()), filepath.Join(handlerDst, e.Name())); err != nil {
			return fmt.Errorf("copy handler: %w", err)
		}
	}
	return nil
}

// copyTree copies the file, symlink or directory src to dst, merging into
// what dst holds (a handler file replaces the template's). Symlinks are
// copied as links, never followed.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			_ = os.RemoveAll(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			// A symlink left at target by the template must not be
			// written through.
			if fi, err := os.Lstat(target); err == nil && !fi.Mode().IsRegular() {
				if err := os.RemoveAll(target); err != nil {
					return err
				}
			}
			return copyFile(p, target, info.Mode().Perm())
		default:
			return nil
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// noFollow makes an open fail on a symlink instead of following it.
const noFollow = syscall.O_NOFOLLOW
