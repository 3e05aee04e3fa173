// goroutines: a one-shot stdio function in Go that leans on the Go runtime's threads. The
// event names one check; the response is the same on every backend and however the
// goroutines are scheduled.
//
//	sum       1,000 goroutines add their share of 1..1,000,000 over a channel
//	mutex     100 goroutines increment a counter 1,000 times each under a sync.Mutex
//	sleep     10 goroutines sleep 1..10 ms (timers), a WaitGroup waits for them
//	gc        allocates 256 MiB in 64 KiB pieces, keeping 1 in 16, with runtime.GC() calls
//	locked    a goroutine locked to its OS thread (runtime.LockOSThread) while others run
//	panic     a goroutine panics: the program exits with status 2, as Go does
//	nil       a nil pointer dereference inside a function with recover(): Go turns the
//	          SIGSEGV into a panic through its signal handler, and it is recovered
//	nil-crash the same without recover(): Go prints the panic naming SIGSEGV and exits 2
//
// Built with CGO_ENABLED=0 (build.rs): a static binary that runs the same in the micro-VM
// and as a process.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

func sum() string {
	const workers, upTo = 1000, 1000000
	results := make(chan int, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			share, total := upTo/workers, 0
			for i := w*share + 1; i <= (w+1)*share; i++ {
				total += i
			}
			results <- total
		}(w)
	}
	total := 0
	for w := 0; w < workers; w++ {
		total += <-results
	}
	return fmt.Sprintf(`{"sum":%d}`, total)
}

func mutex() string {
	var lock sync.Mutex
	var group sync.WaitGroup
	counter := 0
	for g := 0; g < 100; g++ {
		group.Add(1)
		go func() {
			defer group.Done()
			for i := 0; i < 1000; i++ {
				lock.Lock()
				counter++
				lock.Unlock()
			}
		}()
	}
	group.Wait()
	return fmt.Sprintf(`{"counter":%d}`, counter)
}

func sleep() string {
	var group sync.WaitGroup
	var lock sync.Mutex
	slept := 0
	start := time.Now()
	for g := 1; g <= 10; g++ {
		group.Add(1)
		go func(ms int) {
			defer group.Done()
			time.Sleep(time.Duration(ms) * time.Millisecond)
			lock.Lock()
			slept += ms
			lock.Unlock()
		}(g)
	}
	group.Wait()
	return fmt.Sprintf(`{"slept_ms":%d,"at_least_10ms":%t}`, slept, time.Since(start) >= 10*time.Millisecond)
}

var kept [][]byte

func gc() string {
	for i := 0; i < 4096; i++ {
		piece := make([]byte, 64<<10)
		piece[0], piece[len(piece)-1] = byte(i), byte(i>>8)
		if i%16 == 0 {
			kept = append(kept, piece)
		}
		if i%1024 == 1023 {
			runtime.GC()
		}
	}
	intact := true
	for n, piece := range kept {
		i := n * 16
		intact = intact && piece[0] == byte(i) && piece[len(piece)-1] == byte(i>>8)
	}
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return fmt.Sprintf(`{"kept":%d,"intact":%t,"collected":%t}`, len(kept), intact, stats.NumGC >= 4)
}

func locked() string {
	done := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		total := 0
		for i := 0; i < 1000; i++ {
			total += i
			runtime.Gosched()
		}
		done <- total
	}()
	others := make(chan int, 10)
	for g := 0; g < 10; g++ {
		go func(g int) { others <- g }(g)
	}
	total := 0
	for g := 0; g < 10; g++ {
		total += <-others
	}
	return fmt.Sprintf(`{"locked":%d,"others":%d}`, <-done, total)
}

type point struct{ x int }

//go:noinline
func deref(p *point) int { return p.x }

func recovered() string {
	var message string
	func() {
		defer func() { message = fmt.Sprint(recover()) }()
		deref(nil)
	}()
	return fmt.Sprintf(`{"recovered":%q}`, message)
}

func main() {
	event, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goroutines: reading the event:", err)
		os.Exit(1)
	}
	check := strings.Trim(strings.TrimSpace(string(event)), `"`)
	var answer string
	switch check {
	case "sum":
		answer = sum()
	case "mutex":
		answer = mutex()
	case "sleep":
		answer = sleep()
	case "gc":
		answer = gc()
	case "locked":
		answer = locked()
	case "nil":
		answer = recovered()
	case "nil-crash":
		answer = fmt.Sprint(deref(nil))
	case "panic":
		// The first goroutine waits for good: were it to wait on the panicking one (a
		// deferred close, say), it could return first and exit 0 while the panic is still
		// being printed, when the two run on two CPUs at once.
		go func() {
			panic("goroutines: a goroutine panics")
		}()
		select {}
	default:
		fmt.Fprintln(os.Stderr, "goroutines: unknown check", check)
		os.Exit(2)
	}
	fmt.Print(answer)
}
