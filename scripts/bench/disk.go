package main

// The disk's own rate, the physical bound under every durable workload
// (issue 9): how many times a second this machine's file system, in the
// directory the other workloads use, can make a small write durable. No
// peer: these rows describe the machine, not postkit.

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// diskDuration is how long each disk workload runs.
const diskDuration = 3 * time.Second

func diskRows() []row {
	dir := tempDir("postkit-bench-disk")
	defer os.RemoveAll(dir)
	block := make([]byte, 4<<10)
	return []row{
		{workload: "disk: rewrite 4 KiB + fdatasync, 1 writer", postkit: diskRate(1, func(int) error { return rewrite(dir, block) }), machine: true},
		{workload: "disk: new 4 KiB file, fsync file + dir, 1 writer", postkit: diskRate(1, func(w int) error { return durableFile(dir, w, block) }), machine: true},
		{workload: "disk: new 4 KiB file, fsync file + dir, 20 writers", postkit: diskRate(20, func(w int) error { return durableFile(dir, w, block) }), machine: true},
	}
}

// diskRate runs op in writers goroutines for diskDuration and returns the
// operations per second.
func diskRate(writers int, op func(writer int) error) float64 {
	var wg sync.WaitGroup
	counts := make([]int, writers)
	deadline := time.Now().Add(diskDuration)
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := op(w); err != nil {
					log.Fatal(err)
				}
				counts[w]++
			}
		})
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(total) / time.Since(start).Seconds()
}

// rewrite overwrites one file and flushes its data: the disk's flush rate.
func rewrite(dir string, block []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, "rewrite"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(block, 0); err != nil {
		return err
	}
	return fdatasync(f)
}

// durableFile is what storing a message durably costs at the least: a new
// file written and fsynced, its directory fsynced; then it is removed, as
// a delivered queue file is. Each writer uses its own name: the file is
// gone before the writer's next call.
func durableFile(dir string, writer int, block []byte) error {
	name := filepath.Join(dir, fmt.Sprintf("f%d", writer))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(block)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return err
	}
	return os.Remove(name)
}

func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
