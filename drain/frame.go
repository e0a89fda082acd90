package drain

import "unsafe"

// unsafeString views b as a string without copying; the caller must not
// keep the string beyond b's lifetime or let b change while it is used.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
