package users

import (
	"fmt"
	"time"

	"github.com/postkit/postkit/safefile"
)

// LockTimeout is how long Update and UpdateApp wait for another writer's
// lock before failing with an error that wraps safefile.ErrLockTimeout.
var LockTimeout = 10 * time.Second

// fileMode is the mode of a new etc/users or etc/app-passwords: the hashes
// are secret, but the group may read them (chgrp the file to Dovecot's group
// to let its auth process use it).
const fileMode = 0o640

// updateFile is the locked read-modify-write behind Update and UpdateApp.
// change gets the current contents (nil if the file is missing) and returns
// the new ones. A rewritten file keeps the mode and, where the process may
// set them, the owner and group of the old one, so an admin's chgrp survives.
func updateFile(path string, change func(old []byte) ([]byte, error)) error {
	if err := safefile.Update(path, fileMode, LockTimeout, change); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}
