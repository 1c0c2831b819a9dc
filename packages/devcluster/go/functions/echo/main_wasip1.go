//go:build wasip1 && !wasmedge

package main

import (
	"net"
	"net/http"
	"os"
	"syscall"
)

// The dev-cluster build: a long-running WASI command serving HTTP on the TCP listener its host
// preopens as fd 3 (afterlife-wasm-host listens on $PORT for it). WASI preview 1 cannot open
// sockets itself; this is how `wasmtime --tcplisten` and `wazero run -listen` hand one over too.
// Build: GOOS=wasip1 GOARCH=wasm go build -o echo.wasm .
func main() {
	// Non-blocking first: the preopened listener starts out blocking, and a blocking sock_accept
	// would stall this single-threaded guest (every other connection with it) until the next
	// client connects. Non-blocking, the Go runtime waits for it in poll_oneoff with the rest.
	if err := syscall.SetNonblock(3, true); err != nil {
		_, _ = os.Stderr.WriteString("echo: fd 3: " + err.Error() + "\n")
		os.Exit(1)
	}
	listener, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		_, _ = os.Stderr.WriteString("echo: fd 3 is not a listening socket: " + err.Error() + "\n")
		os.Exit(1)
	}
	// One line at start, so `kubectl logs` shows the module ran.
	_, _ = os.Stderr.WriteString("echo: serving on " + listener.Addr().String() + " (preopened fd 3)\n")
	if err := http.Serve(listener, newHandler()); err != nil {
		_, _ = os.Stderr.WriteString("echo: serve: " + err.Error() + "\n")
		os.Exit(1)
	}
}
