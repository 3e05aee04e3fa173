// spawn: a one-shot stdio function in Go that runs child processes with os/exec, the way Go
// programs do (clone with CLONE_VFORK, a pipe for the exec error, waitid then wait4): it runs
// $LAMBDA_TASK_ROOT/fork-c --child <event> and reads its output, then a program that does not
// exist. The response is the same on every backend.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

func main() {
	event, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the event:", err)
		os.Exit(1)
	}
	root := os.Getenv("LAMBDA_TASK_ROOT")
	if root == "" {
		root = "/var/task"
	}
	out, err := exec.Command(root+"/fork-c", "--child", strings.TrimSpace(string(event))).Output()
	if err != nil {
		fmt.Printf("error: %v", err)
		return
	}
	missing := exec.Command(root + "/missing").Run()
	fmt.Printf("out=%q missing=%v", strings.TrimSpace(string(out)), missing != nil)
}
