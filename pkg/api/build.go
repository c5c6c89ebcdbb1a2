package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/build"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// buildResult is the builder API's answer (go-sdk builder.BuildResult,
// with the duration OpenFaaS's builder adds), one object or one NDJSON line.
type buildResult struct {
	Log      []string `json:"log"`
	Image    string   `json:"image,omitempty"`
	Status   string   `json:"status"`
	Error    string   `json:"error,omitempty"`
	Duration float64  `json:"duration,omitempty"`
	// ID is the build's record (GET /system/builds/{id}); ours.
	ID string `json:"id,omitempty"`
}

// defaultBuildList is how many records GET /system/builds returns
// without ?limit.
const defaultBuildList = 50

// buildRoutes mounts POST /build (authenticated by its HMAC signature
// only, as the OpenFaaS builder is), the build records and the templates
// (behind the /system auth).
func (a *api) buildRoutes(r *mux.Router, auth *basicAuth, svc *build.Service) {
	h := &buildHandler{svc: svc, log: a.log, receiving: make(chan struct{}, uploadsPerSlot*max(svc.Concurrency(), 1))}
	r.Handle("/build", methods{http.MethodPost: http.HandlerFunc(h.build)})
	r.Handle("/system/builds", auth.wrap(methods{http.MethodGet: http.HandlerFunc(h.listBuilds)}))
	r.Handle("/system/builds/{id}", auth.wrap(methods{http.MethodGet: http.HandlerFunc(h.getBuild)}))
	r.Handle("/system/templates", auth.wrap(methods{http.MethodGet: http.HandlerFunc(h.listTemplates)}))
	r.Handle("/system/templates/{lang}", auth.wrap(methods{
		http.MethodGet:    http.HandlerFunc(h.getTemplate),
		http.MethodPut:    http.HandlerFunc(h.putTemplate),
		http.MethodDelete: http.HandlerFunc(h.deleteTemplate),
	}))
}

type buildHandler struct {
	svc *build.Service
	log logrus.FieldLogger
	// receiving bounds the requests whose bodies are being read (and
	// spooled to disk) at once. Build slots are taken only once a body is
	// in and signed, so without it unsigned uploads could fill the disk.
	receiving chan struct{}
}

// uploadsPerSlot is how many build requests may be received at once per
// build slot (BUILD_CONCURRENCY): enough that slow signed uploads are not
// turned away by each other, few enough to bound the spooled bytes at
// uploadsPerSlot × BUILD_CONCURRENCY × BUILD_MAX_BYTES.
const uploadsPerSlot = 4

// build answers POST /build: the OpenFaaS builder API.
func (h *buildHandler) build(w http.ResponseWriter, r *http.Request) {
	if !h.svc.Supported() {
		writeError(w, h.log, http.StatusNotImplemented, "image builds are not supported by this runtime (build on a Docker host and upload the image with POST /system/images)", nil)
		return
	}
	if r.ContentLength > h.svc.MaxBytes() {
		writeError(w, h.log, http.StatusRequestEntityTooLarge, fmt.Sprintf("the build request is larger than %d bytes (BUILD_MAX_BYTES)", h.svc.MaxBytes()), nil)
		return
	}
	// A build outlives the server's read and write timeouts; it has its
	// own bound.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.svc.Timeout()))
	_ = rc.SetWriteDeadline(time.Now().Add(h.svc.Timeout() + time.Minute))

	select {
	case h.receiving <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, h.log, http.StatusTooManyRequests, fmt.Sprintf("too many build requests are being received at once (at most %d): try again later", cap(h.receiving)), nil)
		return
	}
	sp, err := h.svc.Spool(r.Body)
	<-h.receiving
	switch {
	case errors.Is(err, build.ErrTooLarge):
		writeError(w, h.log, http.StatusRequestEntityTooLarge, fmt.Sprintf("the build request is larger than %d bytes (BUILD_MAX_BYTES)", h.svc.MaxBytes()), nil)
		return
	case err != nil:
		writeError(w, h.log, http.StatusBadRequest, "reading the build request: "+err.Error(), nil)
		return
	}
	defer sp.Remove()
	if !build.VerifySignature(r.Header.Get(build.SignatureHeader), sp.Sum) {
		h.log.WithField("remote", r.RemoteAddr).Warn("build refused: missing or bad " + build.SignatureHeader)
		writeError(w, h.log, http.StatusUnauthorized, "missing or invalid "+build.SignatureHeader+" (HMAC-SHA256 of the body with the payload secret)", nil)
		return
	}
	// The slot is taken only once the body is in and signed: an upload
	// still under way, or one nobody signed, must not hold a build slot
	// and turn signed builds away.
	release, ok := h.svc.Acquire()
	if !ok {
		writeError(w, h.log, http.StatusTooManyRequests, fmt.Sprintf("Concurrent request limit exceeded. Max concurrent request: %d", h.svc.Concurrency()), nil)
		return
	}
	defer release()
	job, err := h.svc.Prepare(r.Context(), sp)
	var reqErr *build.RequestError
	switch {
	case errors.As(err, &reqErr):
		writeError(w, h.log, http.StatusBadRequest, reqErr.Msg, nil)
		return
	case err != nil:
		writeError(w, h.log, http.StatusInternalServerError, "preparing the build", err)
		return
	}
	defer job.Close()
	sp.Remove()

	if r.Header.Get("Accept") != "application/x-ndjson" {
		rec := h.svc.Run(r.Context(), job, nil)
		writeJSON(w, h.log, http.StatusOK, resultOf(rec, rec.Log))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	start := time.Now()
	_ = rc.Flush()
	// emit runs in Run's goroutine only, so the writes never overlap.
	emit := func(line string) {
		_ = enc.Encode(buildResult{Log: []string{line}, Status: store.BuildInProgress, Duration: time.Since(start).Seconds()})
		_ = rc.Flush()
	}
	rec := h.svc.Run(r.Context(), job, emit)
	_ = enc.Encode(resultOf(rec, []string{}))
	_ = rc.Flush()
}

func resultOf(rec store.Build, log []string) buildResult {
	if log == nil {
		log = []string{}
	}
	return buildResult{Log: log, Image: rec.Image, Status: rec.Status, Error: rec.Error, Duration: rec.Duration, ID: rec.ID}
}

// listBuilds answers GET /system/builds[?limit=N]: newest first.
func (h *buildHandler) listBuilds(w http.ResponseWriter, r *http.Request) {
	limit := defaultBuildList
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, h.log, http.StatusBadRequest, "limit must be a number, 0 or more (0: all)", nil)
			return
		}
		limit = n
	}
	list, err := h.svc.Records().ListBuilds(r.Context(), limit)
	if err != nil {
		writeError(w, h.log, http.StatusInternalServerError, "listing builds", err)
		return
	}
	writeJSON(w, h.log, http.StatusOK, list)
}

// getBuild answers GET /system/builds/{id}.
func (h *buildHandler) getBuild(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	b, err := h.svc.Records().GetBuild(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, h.log, http.StatusNotFound, "build "+short(id)+" not found", nil)
	case err != nil:
		writeError(w, h.log, http.StatusInternalServerError, "reading build", err)
	default:
		writeJSON(w, h.log, http.StatusOK, b)
	}
}

func (h *buildHandler) listTemplates(w http.ResponseWriter, _ *http.Request) {
	list, err := h.svc.Templates().List()
	if err != nil {
		writeError(w, h.log, http.StatusInternalServerError, "listing templates", err)
		return
	}
	writeJSON(w, h.log, http.StatusOK, list)
}

func (h *buildHandler) getTemplate(w http.ResponseWriter, r *http.Request) {
	lang := mux.Vars(r)["lang"]
	t, err := h.svc.Templates().Get(lang)
	switch {
	case errors.Is(err, build.ErrTemplateNotFound):
		writeError(w, h.log, http.StatusNotFound, "template "+short(lang)+" not found", nil)
	case err != nil:
		writeError(w, h.log, http.StatusInternalServerError, "reading template", err)
	default:
		writeJSON(w, h.log, http.StatusOK, t)
	}
}

// putTemplate answers PUT /system/templates/{lang}: the body is a tar of
// the template directory.
func (h *buildHandler) putTemplate(w http.ResponseWriter, r *http.Request) {
	lang := mux.Vars(r)["lang"]
	if !build.ValidLang(lang) || lang == build.LangDockerfile {
		writeError(w, h.log, http.StatusBadRequest, "invalid template name "+short(lang), nil)
		return
	}
	body := http.MaxBytesReader(w, r.Body, h.svc.MaxBytes())
	err := h.svc.Templates().Put(lang, body)
	var reqErr *build.RequestError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, h.log, http.StatusRequestEntityTooLarge, "the template is larger than BUILD_MAX_BYTES", nil)
	case errors.As(err, &reqErr):
		writeError(w, h.log, http.StatusBadRequest, reqErr.Msg, nil)
	case err != nil:
		writeError(w, h.log, http.StatusInternalServerError, "storing template", err)
	default:
		h.log.WithField("template", lang).Info("template stored")
		w.WriteHeader(http.StatusNoContent)
	}
}

func (h *buildHandler) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	lang := mux.Vars(r)["lang"]
	err := h.svc.Templates().Delete(lang)
	switch {
	case errors.Is(err, build.ErrTemplateNotFound):
		writeError(w, h.log, http.StatusNotFound, "template "+short(lang)+" not found", nil)
	case err != nil:
		writeError(w, h.log, http.StatusInternalServerError, "removing template", err)
	default:
		h.log.WithField("template", lang).Info("template removed")
		w.WriteHeader(http.StatusNoContent)
	}
}

// ImageDeployer deploys built images the way the API deploys functions:
// it only writes desired state to the store.
type ImageDeployer struct {
	store   store.Store
	scaling scaling.Defaults
	log     logrus.FieldLogger
}

var _ build.Deployer = (*ImageDeployer)(nil)

// NewImageDeployer returns the deployer of built images over st, with the
// same label defaults and replica limit as the router (Config.Scaling,
// Config.MaxReplicas).
func NewImageDeployer(st store.Store, d scaling.Defaults, maxReplicas uint64, log logrus.FieldLogger) *ImageDeployer {
	if maxReplicas == 0 {
		maxReplicas = DefaultMaxReplicas
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &ImageDeployer{store: st, scaling: effectiveDefaults(d, maxReplicas), log: log}
}

// DeployImage implements build.Deployer: an existing function keeps its
// spec but for the image; a new one gets a spec of name and image only.
func (d *ImageDeployer) DeployImage(ctx context.Context, name, namespace, image string) (string, error) {
	key := store.Key(namespace, name)
	cur, err := d.store.Get(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		spec := types.FunctionDeployment{Service: name, Namespace: namespace, Image: image}
		_, p, err := validateDeployment(&spec, d.scaling)
		if err != nil {
			return "", err
		}
		rec, err := d.store.Create(ctx, spec, initialReplicas(p))
		if err != nil {
			return "", err
		}
		writeLog(d.log, rec).Info("function deployed by a build")
		return key, nil
	case err != nil:
		return "", err
	}
	spec := cur.Spec
	spec.Image = image
	_, p, err := validateDeployment(&spec, d.scaling)
	if err != nil {
		return "", err
	}
	rec, err := d.store.Update(ctx, spec, p.Clamp)
	if err != nil {
		return "", err
	}
	writeLog(d.log, rec).Info("function updated by a build")
	return key, nil
}
