package main

import (
	"debug/elf"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
)

// jobInitBinary is the binary job containers started ahead of their
// calls run first (pkg/jobinit): configured, else this daemon's own; ""
// (with the reason logged) when it is not statically linked: it runs in
// the function's image, which may be FROM scratch.
func jobInitBinary(configured string, log logrus.FieldLogger) string {
	exe, err := configured, error(nil)
	if exe == "" {
		exe, err = os.Executable()
	}
	if err == nil {
		err = staticELF(exe)
	}
	if err != nil {
		log.WithError(err).Warn("job-mode calls start their own container (none are started ahead of calls): " +
			"build the daemon with CGO_ENABLED=0, as make build does, or name such a build in JOB_INIT_BINARY")
		return ""
	}
	return exe
}

// staticELF reports why the file at path is not a statically linked ELF
// executable (nil when it is).
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}
