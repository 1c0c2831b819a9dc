// Command probe is a test guest: it prints what its host handed it, sleeps (a poll_oneoff clock
// subscription), and exits with $PROBE_EXIT.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	fmt.Printf("args=%q\n", os.Args)
	fmt.Printf("env=%s\n", os.Getenv("PROBE_VALUE"))
	b, err := os.ReadFile(os.Getenv("PROBE_FILE"))
	fmt.Printf("file=%q err=%v\n", b, err)
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Printf("slept=%t\n", time.Since(start) >= 20*time.Millisecond)
	code, _ := strconv.Atoi(os.Getenv("PROBE_EXIT"))
	os.Exit(code)
}
