//go:build !unix

package maildir

import "os"

// sameOwner does nothing where files have no Unix owners.
func sameOwner(*os.File, string) error { return nil }

func sameOwnerDir(string, string) error { return nil }
