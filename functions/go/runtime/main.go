// runtime: a Lambda custom runtime in Go written with net/http only, the way a Go function
// talks to the Runtime API without the aws-lambda-go library. It loops on
// GET /2018-06-01/runtime/invocation/next and posts {"echo": <event>, "count": N, "go": true}
// back, where N counts the invocations this process has served. An event {"fail": true}
// posts an error instead. Each event is handled in a goroutine of its own while the loop
// waits for it, so the answer crosses goroutines (and threads) on every invocation.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"
	client := &http.Client{}
	count := 0
	for {
		next, err := client.Get(api + "/invocation/next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "runtime: next:", err)
			os.Exit(1)
		}
		event, err := io.ReadAll(next.Body)
		next.Body.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "runtime: reading the event:", err)
			os.Exit(1)
		}
		id := next.Header.Get("Lambda-Runtime-Aws-Request-Id")
		count++
		answers := make(chan []byte)
		go func(count int) {
			var payload map[string]interface{}
			_ = json.Unmarshal(event, &payload)
			if fail, _ := payload["fail"].(bool); fail {
				answers <- nil
				return
			}
			body, _ := json.Marshal(map[string]interface{}{
				"echo":  json.RawMessage(event),
				"count": count,
				"go":    true,
			})
			answers <- body
		}(count)
		body, path := <-answers, "/response"
		if body == nil {
			body = []byte(`{"errorMessage":"asked to fail","errorType":"Go.Failure"}`)
			path = "/error"
		}
		fmt.Fprintf(os.Stderr, "runtime: invocation %d\n", count)
		posted, err := client.Post(api+"/invocation/"+id+path, "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, "runtime: posting:", err)
			os.Exit(1)
		}
		io.Copy(io.Discard, posted.Body)
		posted.Body.Close()
	}
}
