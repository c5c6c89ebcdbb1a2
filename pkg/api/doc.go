// Package api serves dockerfaasd's OpenFaaS-compatible HTTP surface: the
// /system/* management API, /healthz, and the mount points for invocation,
// metrics and the reconcile debug page.
//
// Handlers only validate requests, write desired state to the store and read
// the status the controller published. They never talk to Docker: the
// controller converges Docker towards the store on its own, which is why
// every accepted write answers 202 Accepted rather than waiting for it.
package api
