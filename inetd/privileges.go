package inetd

import (
	"fmt"
	"log"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/maillog"
)

// DropPrivileges switches the whole process to the account username: its
// group as the only supplementary group, then real, effective and saved
// group, then real, effective and saved user, in that order (once the user
// changed, the groups could no longer be). Since Go 1.16 these calls apply to
// every thread. It refuses an account with uid 0 and checks afterwards that
// no root id is left.
//
// Only root can switch. Run as anyone else, it returns nil when already
// running as that account and an error otherwise, changing nothing.
func DropPrivileges(username string) error {
	u, err := user.Lookup(username)
	if err != nil {
		return fmt.Errorf("inetd: --user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("inetd: --user %s: uid %q is not a number", username, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("inetd: --user %s: gid %q is not a number", username, u.Gid)
	}
	if uid == 0 {
		return fmt.Errorf("inetd: --user %s has uid 0: refusing to run as root", username)
	}
	if os.Geteuid() != 0 {
		if os.Getuid() == uid && os.Geteuid() == uid {
			return nil
		}
		return fmt.Errorf("inetd: --user %s: only root can switch users, running as uid %d", username, os.Geteuid())
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("inetd: --user %s: setgroups: %w", username, err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("inetd: --user %s: setresgid: %w", username, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("inetd: --user %s: setresuid: %w", username, err)
	}
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	if ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid {
		return fmt.Errorf("inetd: --user %s: after switching, uids %d/%d/%d gids %d/%d/%d: refusing to run",
			username, ruid, euid, suid, rgid, egid, sgid)
	}
	log.Printf("inetd: privileges=dropped user=%s uid=%d gid=%d", maillog.Quote(username), uid, gid)
	return nil
}
