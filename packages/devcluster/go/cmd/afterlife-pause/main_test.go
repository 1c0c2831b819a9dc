package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the pause process: run with this variable set it is afterlife-pause;
// with "spawn" it first starts a short-lived child (and prints its pid) that only pause can reap.
const asPause = "AFTERLIFE_PAUSE_TEST_AS_PAUSE"

func TestMain(m *testing.M) {
	switch os.Getenv(asPause) {
	case "spawn":
		child := exec.Command("/bin/sh", "-c", "exit 0")
		if err := child.Start(); err != nil {
			panic(err)
		}
		fmt.Println(child.Process.Pid)
		fallthrough
	case "1":
		main()
	}
	os.Exit(m.Run())
}

func startPause(t *testing.T, mode string) (*exec.Cmd, *bufio.Reader, chan error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), asPause+"="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, bufio.NewReader(stdout), done
}

func TestSIGTERMExitsZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd, _, done := startPause(t, "1")
		time.Sleep(200 * time.Millisecond) // past signal.Notify
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%v: %v, want exit 0", sig, err)
			}
			done <- nil // for the cleanup
		case <-time.After(2 * time.Second):
			t.Fatalf("%v: still running after 2s", sig)
		}
	}
}

func TestReapsChildren(t *testing.T) {
	_, stdout, _ := startPause(t, "spawn")
	line, err := stdout.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	stat := "/proc/" + strings.TrimSpace(line) + "/stat"
	// Unreaped, the exited child would stay a zombie (state Z) for as long as pause lives.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(stat); os.IsNotExist(err) {
			return
		}
	}
	b, _ := os.ReadFile(stat)
	t.Fatalf("child not reaped: %s", b)
}
