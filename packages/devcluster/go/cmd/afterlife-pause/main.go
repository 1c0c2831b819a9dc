// Command afterlife-pause is the pod sandbox process, the image containerd pins as its sandbox
// image: it holds the pod's namespaces open, sleeps, reaps whatever exits under it (as PID 1
// of a shared pid namespace it inherits every orphan), and exits 0 on SIGTERM or SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	reap() // children that exited before Notify sent no signal we saw
	// Blocking on the channel costs no CPU: the runtime parks until a signal arrives.
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child; SIGCHLDs coalesce, so one signal may stand for many.
func reap() {
	for {
		var status syscall.WaitStatus
		if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
	}
}
