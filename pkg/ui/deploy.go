package ui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// deployForm is what the deploy form holds, re-shown after an error.
type deployForm struct {
	Name, Namespace, Image string
	Env, Labels, Annots    string // KEY=VALUE lines
	Secrets                []string
}

// Has reports whether secret s is selected.
func (f deployForm) Has(s string) bool {
	for _, x := range f.Secrets {
		if x == s {
			return true
		}
	}
	return false
}

type deployData struct {
	Form       deployForm
	Namespaces []string
	Secrets    []string // of Form.Namespace, names only
}

func (h *Handler) deployData(ctx context.Context, r *http.Request, f deployForm) deployData {
	d := deployData{Form: f, Namespaces: h.namespaces(ctx, r)}
	var secrets []types.Secret
	if err := h.get(ctx, r, "/system/secrets?namespace="+url.QueryEscape(f.Namespace), &secrets); err == nil {
		for _, s := range secrets {
			d.Secrets = append(d.Secrets, s.Name)
		}
		sort.Strings(d.Secrets)
	}
	return d
}

// deployPage is GET /ui/deploy.
func (h *Handler) deployPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	h.render(w, r, http.StatusOK, "deploy", "Deploy", h.deployData(ctx, r, deployForm{Namespace: nsParam(r)}), "")
}

// deploy is POST /ui/deploy: deploy an image by reference.
func (h *Handler) deploy(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := deployForm{
		Name:      strings.TrimSpace(r.PostFormValue("name")),
		Namespace: nsParam(r),
		Image:     strings.TrimSpace(r.PostFormValue("image")),
		Env:       r.PostFormValue("env"),
		Labels:    r.PostFormValue("labels"),
		Annots:    r.PostFormValue("annotations"),
		Secrets:   r.PostForm["secrets"],
	}
	if err := h.deploySpec(r.Context(), r, f); err != nil {
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		h.render(w, r, failStatus(err), "deploy", "Deploy", h.deployData(ctx, r, f), err.Error())
		return
	}
	redirect(w, r, "/ui/function", url.Values{"name": {f.Name}, "namespace": {f.Namespace}},
		"Deployed "+f.Name+" ("+f.Image+"). It is ready once its replicas pass their readiness probe.")
}

// deploySpec deploys f as faas-cli does: PUT (update), then POST when the
// function does not exist yet.
func (h *Handler) deploySpec(ctx context.Context, r *http.Request, f deployForm) error {
	spec := types.FunctionDeployment{Service: f.Name, Namespace: f.Namespace, Image: f.Image, Secrets: f.Secrets}
	var err error
	if spec.EnvVars, err = parsePairs("environment", f.Env); err != nil {
		return &apiError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	labels, err := parsePairs("labels", f.Labels)
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	annots, err := parsePairs("annotations", f.Annots)
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	if labels != nil {
		spec.Labels = &labels
	}
	if annots != nil {
		spec.Annotations = &annots
	}
	res, err := h.callJSON(ctx, r, http.MethodPut, "/system/functions", spec)
	if err == nil && res.Status == http.StatusNotFound {
		res, err = h.callJSON(ctx, r, http.MethodPost, "/system/functions", spec)
	}
	if err != nil {
		return err
	}
	if !res.ok() {
		return &apiError{Status: res.Status, Msg: res.message()}
	}
	return nil
}

// parsePairs reads KEY=VALUE lines; nil when there are none.
func parsePairs(what, s string) (map[string]string, error) {
	var m map[string]string
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s, line %d: want KEY=VALUE", what, n)
		}
		if m == nil {
			m = map[string]string{}
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// maxField bounds one text field of the upload form.
const maxField = 64 << 10

// upload is POST /ui/upload (multipart): a docker save archive, streamed
// to POST /system/images as it arrives, then deployed as a function. The
// form's fields come before the file (the page orders them so), so the
// token is checked before a byte of the archive is read.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string, f deployForm) {
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		if f.Namespace == "" {
			f.Namespace = defaultNamespace
		}
		h.render(w, r, code, "deploy", "Deploy", h.deployData(ctx, r, f), msg)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		fail(http.StatusBadRequest, "the upload form must be sent as multipart/form-data", deployForm{})
		return
	}
	// An archive takes as long as it takes: the server's timeouts would cut
	// it off (the API's own upload route is exempt from them too).
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	var f deployForm
	tokenOK := false
	var loaded string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(http.StatusBadRequest, "reading the upload form: "+err.Error(), f)
			return
		}
		if part.FormName() == "archive" {
			if !tokenOK {
				fail(http.StatusForbidden, "the form's security token is missing or stale: reload the page and send it again", f)
				return
			}
			if loaded, err = h.loadArchive(r, part); err != nil {
				fail(failStatus(err), err.Error(), f)
				return
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxField))
		if err != nil {
			fail(http.StatusBadRequest, "reading the upload form: "+err.Error(), f)
			return
		}
		v := string(b)
		switch part.FormName() {
		case csrfField:
			tokenOK = h.validToken(r, v)
		case "name":
			f.Name = strings.TrimSpace(v)
		case "namespace":
			f.Namespace = strings.TrimSpace(v)
		case "env":
			f.Env = v
		case "labels":
			f.Labels = v
		case "annotations":
			f.Annots = v
		case "secrets":
			f.Secrets = append(f.Secrets, v)
		}
	}
	if f.Namespace == "" {
		f.Namespace = defaultNamespace
	}
	if loaded == "" {
		fail(http.StatusBadRequest, "choose a docker save archive (.tar or .tar.gz) to upload", f)
		return
	}
	f.Image = loaded
	if f.Name == "" {
		redirect(w, r, "/ui/deploy", url.Values{"namespace": {f.Namespace}}, "Loaded "+loaded+" (no function name given, so nothing was deployed).")
		return
	}
	if err := h.deploySpec(r.Context(), r, f); err != nil {
		fail(failStatus(err), "loaded "+loaded+", but the deploy failed: "+err.Error(), f)
		return
	}
	redirect(w, r, "/ui/function", url.Values{"name": {f.Name}, "namespace": {f.Namespace}},
		"Loaded "+loaded+" and deployed "+f.Name+".")
}

// loadArchive streams body to POST /system/images and returns the first
// reference it loaded.
func (h *Handler) loadArchive(r *http.Request, body io.Reader) (string, error) {
	res, err := h.call(r.Context(), r, http.MethodPost, "/system/images", body,
		http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil {
		return "", err
	}
	var out struct {
		Images []struct {
			Ref string `json:"ref"`
		} `json:"images"`
	}
	if err := res.decode(&out); err != nil {
		return "", err
	}
	if len(out.Images) == 0 || out.Images[0].Ref == "" {
		return "", &apiError{Status: http.StatusBadRequest, Msg: "the archive holds no tagged image: docker save NAME:TAG, not an image ID"}
	}
	return out.Images[0].Ref, nil
}
