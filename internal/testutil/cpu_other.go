//go:build !linux

package testutil

import "time"

// ThreadCPU is not measured on this platform.
func ThreadCPU() (time.Duration, bool) { return 0, false }

// ProcessCPU is not measured on this platform.
func ProcessCPU() time.Duration { return 0 }
