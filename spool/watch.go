package spool

import (
	"context"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Watch wakes the queue runner: the channel receives a value when a queue
// file is renamed into queue/, which is how Enqueue commits a new entry, when
// an envelope is renamed into env/, which is how Update replaces one (so
// `sendq release` wakes the runner too), and when
// a drop is renamed into maildrop/ (Drop), for the runner to Pickup. Wake-ups
// that arrive while the previous one is unread are merged into it. The channel
// holds one wake-up from the start, so a runner that scans on every receive
// also picks up what arrived before it started. It is closed when ctx is done
// or the watch ends (queue/ or env/ removed).
//
// Watch uses inotify(7): enqueuers and droppers do nothing extra and never
// block, whether a runner watches or not. inotify does not see changes made on another host
// (NFS): the spool must be on a local file system.
func (s *Spool) Watch(ctx context.Context) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, storageErr(err, "watch: inotify_init1")
	}
	// New entries are renamed into queue/ (or linked, IN_CREATE, where
	// the file system lacks RENAME_NOREPLACE), updated envelopes into env/.
	for _, d := range []string{s.queueDir, s.envDir} {
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_ONLYDIR); err != nil {
			unix.Close(fd)
			return nil, storageErr(&os.PathError{Op: "inotify_add_watch", Path: d, Err: err}, "watch")
		}
	}
	// Drops are renamed into maildrop/ when complete (Drop). A spool
	// without maildrop/ (an old layout) is watched without it.
	if _, err := unix.InotifyAddWatch(fd, s.dropDir, unix.IN_MOVED_TO|unix.IN_ONLYDIR); err != nil && err != unix.ENOENT {
		unix.Close(fd)
		return nil, storageErr(&os.PathError{Op: "inotify_add_watch", Path: s.dropDir, Err: err}, "watch")
	}
	// A non-blocking descriptor becomes a pollable *os.File, so Close from
	// the goroutine below interrupts a pending Read.
	f := os.NewFile(uintptr(fd), "inotify:"+s.dir)
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	wake := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer close(ch)
		defer stop()
		defer f.Close()
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			// Read fails once ctx is done (the file is closed) or on
			// an error inotify cannot recover from; either ends the watch.
			n, err := f.Read(buf)
			if err != nil || watchEvents(buf[:n], wake) {
				return
			}
		}
	}()
	return ch, nil
}

// watchEvents calls wake for every new entry, every replaced envelope and every new
// drop in buf, and for a queue overflow (events were lost: scan anyway). It reports whether the
// watch has ended.
func watchEvents(buf []byte, wake func()) (ended bool) {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return false
		}
		name := string(trimNUL(buf[unix.SizeofInotifyEvent:end]))
		buf = buf[end:]
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			wake()
		case ev.Mask&unix.IN_IGNORED != 0:
			return true
		case ev.Mask&(unix.IN_MOVED_TO|unix.IN_CREATE) != 0 && (ValidID(name) || validDropName(name)):
			wake()
		}
	}
	return false
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
