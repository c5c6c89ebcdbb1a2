package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dockerfaasd/dockerfaasd/pkg/push"
)

// runPush is `dockerfaasd push`: the client that sends a local image to a
// gateway without a registry (pkg/push). It returns the exit code.
func runPush(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return push.Main(ctx, push.Env{
		Args:             args,
		Getenv:           os.Getenv,
		Stdin:            os.Stdin,
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		StderrIsTerminal: push.IsTerminal(os.Stderr),
		NewEngine:        push.ConnectDocker,
	})
}
