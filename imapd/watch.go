package imapd

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// notifier watches directories with one inotify instance for the whole
// process, so that any number of IDLE sessions use one of the few
// instances a user may have (fs.inotify.max_user_instances, 128 by
// default), each directory costing one watch however many sessions wait
// on it.
type notifier struct {
	mu   sync.Mutex
	fd   int
	f    *os.File
	subs map[int32]map[chan struct{}]struct{} // watch descriptor -> waiters
	err  error
}

var (
	theNotifier     *notifier
	theNotifierOnce sync.Once
)

// watchEvents are the changes of a Maildir's new/ or cur/ that matter:
// files coming, going or being renamed (flag changes), and the directory
// itself going away.
const watchEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

func getNotifier() (*notifier, error) {
	theNotifierOnce.Do(func() {
		n := &notifier{subs: map[int32]map[chan struct{}]struct{}{}}
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			n.err = fmt.Errorf("imapd: inotify: %w", err)
		} else {
			// A non-blocking descriptor goes into Go's poller, so reads
			// wait without holding a thread.
			n.fd = fd
			n.f = os.NewFile(uintptr(fd), "inotify")
			go n.read()
		}
		theNotifier = n
	})
	return theNotifier, theNotifier.err
}

// watch makes c receive a value (without blocking: c should have room
// for one) whenever one of dirs changes, until cancel is called.
func (n *notifier) watch(c chan struct{}, dirs ...string) (cancel func(), err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var wds []int32
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(n.fd, d, watchEvents)
		if err != nil {
			n.unwatchLocked(c, wds)
			return nil, fmt.Errorf("imapd: watch %s: %w", d, err)
		}
		if n.subs[int32(wd)] == nil {
			n.subs[int32(wd)] = map[chan struct{}]struct{}{}
		}
		n.subs[int32(wd)][c] = struct{}{}
		wds = append(wds, int32(wd))
	}
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.unwatchLocked(c, wds)
	}, nil
}

// unwatchLocked removes c from the watches wds, and the watches nobody
// waits on any more.
func (n *notifier) unwatchLocked(c chan struct{}, wds []int32) {
	for _, wd := range wds {
		subs, ok := n.subs[wd]
		if !ok {
			continue
		}
		delete(subs, c)
		if len(subs) == 0 {
			delete(n.subs, wd)
			unix.InotifyRmWatch(n.fd, uint32(wd))
		}
	}
}

// read hands the events to the waiters of their watches.
func (n *notifier) read() {
	buf := make([]byte, 64*1024)
	for {
		k, err := n.f.Read(buf)
		if err != nil {
			n.mu.Lock()
			n.err = fmt.Errorf("imapd: inotify: %w", err)
			for _, subs := range n.subs {
				for c := range subs {
					notify(c)
				}
			}
			n.mu.Unlock()
			return
		}
		n.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= k; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			off += unix.SizeofInotifyEvent + nameLen
			for c := range n.subs[wd] {
				notify(c)
			}
			if mask&unix.IN_IGNORED != 0 {
				// The kernel dropped the watch (the directory is gone).
				delete(n.subs, wd)
			}
			if mask&unix.IN_Q_OVERFLOW != 0 {
				for _, subs := range n.subs {
					for c := range subs {
						notify(c)
					}
				}
			}
		}
		n.mu.Unlock()
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
