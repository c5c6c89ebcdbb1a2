package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// BackupWriter writes a backup of the state (*store.Bolt does).
type BackupWriter interface {
	WriteBackup(ctx context.Context, w io.Writer, version string) (store.BackupManifest, error)
}

var _ BackupWriter = (*store.Bolt)(nil)

// backupHandler serves GET /system/backup: a hot, consistent backup of
// the state file with the secrets key (store.WriteBackup). The archive is
// spooled to a temporary file first, so a slow client never holds the
// store's read transaction open (which would stall writes that grow the
// file) and a failure is still answered with a status, not a cut-off body.
func backupHandler(b BackupWriter, version string, log logrus.FieldLogger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp("", "dockerfaasd-backup-*.tar.gz") // mode 0600: it holds the secrets key
		if err != nil {
			writeError(w, log, http.StatusInternalServerError, "backup failed: no room for the archive", err)
			return
		}
		defer func() {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}()
		m, err := b.WriteBackup(r.Context(), f, version)
		if errors.Is(err, syscall.ENOSPC) {
			writeError(w, log, http.StatusInsufficientStorage, "backup failed: no room for the archive in the temporary directory", err)
			return
		}
		if err != nil {
			writeError(w, log, http.StatusInternalServerError, "backup failed", err)
			return
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			writeError(w, log, http.StatusInternalServerError, "backup failed", err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/gzip")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", `attachment; filename="dockerfaasd-backup-`+m.CreatedAt.Format("20060102T150405Z")+`.tar.gz"`)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Dockerfaasd-Schema", strconv.FormatUint(m.Schema, 10))
		w.WriteHeader(http.StatusOK)
		n, err := io.Copy(w, f)
		l := log.WithFields(logrus.Fields{"bytes": n, "schema": m.Schema, "createdAt": m.CreatedAt.Format(time.RFC3339)})
		if err != nil {
			l.WithError(err).Warn("backup cut off: the client went away")
			return
		}
		l.Info("backup served")
	})
}
