package imapcache

import (
	"strconv"
	"strings"
)

// nameSizes returns the ",S=" and ",W=" sizes of a message file name as
// maildir.ParseName does (-1 when absent), without its allocations: it
// runs for every message a FETCH looks up.
func nameSizes(name string) (size, vsize int64) {
	size, vsize = -1, -1
	if i := strings.IndexByte(name, ':'); i >= 0 {
		if !strings.HasPrefix(name[i+1:], "2,") {
			return size, vsize
		}
		name = name[:i]
	}
	first := true
	for field := range strings.SplitSeq(name, ",") {
		if first {
			first = false
			continue
		}
		if v, ok := sizeValue(field, "S="); ok {
			size = v
		} else if v, ok := sizeValue(field, "W="); ok {
			vsize = v
		}
	}
	return size, vsize
}

// sizeValue parses field as prefix and decimal digits.
func sizeValue(field, prefix string) (int64, bool) {
	digits, ok := strings.CutPrefix(field, prefix)
	if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil
}
