package runtime

import (
	"net"
	"strconv"
)

// What every runtime shares about how a function runs: the OpenFaaS
// contract (its port, where it reads its secrets) and the daemon's naming.

// DefaultInstance names the daemon's objects when a runtime's configured
// instance is empty.
const DefaultInstance = "dockerfaasd"

// FunctionPort is the port every OpenFaaS watchdog listens on.
const FunctionPort = 8080

// SecretsDir is where a function finds its secrets, one file per secret
// named after it: the path OpenFaaS uses on Kubernetes and in faasd.
const SecretsDir = "/var/openfaas/secrets"

// SecretFileMode lets any user read a secret file (many function images run
// as uid 1000) and no one but root change it.
const SecretFileMode = 0o444

// ReplicaAddr is where a replica with the given IP serves its function.
func ReplicaAddr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(FunctionPort)) }

// LoadReader is the proxy's published in-flight count per replica (keyed
// as faas.Endpoint.Replica).
type LoadReader interface {
	InFlight(replica string) int64
}
