// Package admin is kongbot's local admin endpoint and its client. bbolt
// allows one process to open the store, and while the bot runs that is the
// bot; `kongbot runs ...` and `kongbot store backup` then ask the bot over
// this endpoint instead of opening the file. It has no authentication, so
// config requires a loopback listen address.
//
//	GET  /admin/runs[?gateway=G&active=1]  runs, newest first (without their documents)
//	GET  /admin/runs/{id}                  one run with its document
//	GET  /admin/runs/{id}/audit[?verify=1] the run's audit entries, and with verify
//	                                       the run's chain and the whole log checked
//	POST /admin/backup {"path": "/abs/path"} a consistent backup, verified
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/kongbot/kongbot/store"
)

// AuditReport is the answer of GET /admin/runs/{id}/audit.
type AuditReport struct {
	Run     string             `json:"run"`
	Entries []store.AuditEntry `json:"entries"`
	// With verify: the run's own chain and the whole log.
	RunChain *store.Verification `json:"run_chain,omitempty"`
	Log      *store.Verification `json:"log,omitempty"`
}

// BackupRequest is the body of POST /admin/backup.
type BackupRequest struct {
	Path string `json:"path"`
}

type errorBody struct {
	Error string `json:"error"`
}

// Handler serves the admin endpoint from an open store.
func Handler(st *store.Store, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{st: st, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/runs", h.runs)
	mux.HandleFunc("GET /admin/runs/{id}", h.run)
	mux.HandleFunc("GET /admin/runs/{id}/audit", h.audit)
	mux.HandleFunc("POST /admin/backup", h.backup)
	return mux
}

type handler struct {
	st  *store.Store
	log *slog.Logger
}

func (h *handler) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Warn("admin: writing reply", "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		h.log.Error("admin", "err", err)
	}
	h.reply(w, status, errorBody{Error: err.Error()})
}

var errBadRequest = errors.New("bad request")

func (h *handler) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	runs, err := h.st.Runs(r.Context(), store.RunFilter{Gateway: q.Get("gateway"), ActiveOnly: q.Get("active") == "1"})
	if err != nil {
		h.fail(w, err)
		return
	}
	for i := range runs {
		runs[i].Data = nil
	}
	if runs == nil {
		runs = []store.Run{}
	}
	h.reply(w, http.StatusOK, runs)
}

func (h *handler) run(w http.ResponseWriter, r *http.Request) {
	run, err := h.st.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	h.reply(w, http.StatusOK, run)
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	rep, err := Audit(r.Context(), h.st, r.PathValue("id"), r.URL.Query().Get("verify") == "1")
	if err != nil {
		h.fail(w, err)
		return
	}
	h.reply(w, http.StatusOK, rep)
}

// Audit builds an AuditReport from a store; the CLI uses it too when it
// opens the file itself.
func Audit(ctx context.Context, st *store.Store, id string, verify bool) (AuditReport, error) {
	if _, err := st.Run(ctx, id); err != nil {
		return AuditReport{}, err
	}
	entries, err := st.Audit(ctx, id)
	if err != nil {
		return AuditReport{}, err
	}
	rep := AuditReport{Run: id, Entries: entries}
	if verify {
		rc, err := st.VerifyRunAudit(ctx, id)
		if err != nil {
			return AuditReport{}, err
		}
		lg, err := st.VerifyAudit(ctx)
		if err != nil {
			return AuditReport{}, err
		}
		rep.RunChain, rep.Log = &rc, &lg
	}
	return rep, nil
}

func (h *handler) backup(w http.ResponseWriter, r *http.Request) {
	var req BackupRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		h.fail(w, fmt.Errorf("%w: body must be {\"path\": \"/absolute/path\"}", errBadRequest))
		return
	}
	if !filepath.IsAbs(req.Path) {
		// The bot's working directory is not the caller's.
		h.fail(w, fmt.Errorf("%w: backup path %q must be absolute", errBadRequest, req.Path))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	info, err := h.st.Backup(ctx, req.Path)
	if err != nil {
		h.fail(w, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	h.log.Info("admin: backup written", "path", info.Path, "bytes", info.Bytes)
	h.reply(w, http.StatusOK, info)
}
