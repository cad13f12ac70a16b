//go:build !linux

package pathnorm

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
