// Package version holds the version of Herald's binaries. Release builds (make images) set
// Version and Revision at link time:
//
//	-ldflags "-X github.com/herald-rollouts/herald/internal/version.Version=v1.2.3 -X ...Revision=<commit>"
//
// Other builds (go build, go run) report what the Go toolchain stamped into the binary.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version, e.g. v1.2.3; "dev" when not set at link time.
var Version = "dev"

// Revision is the source commit; when not set at link time it is read from the build info.
var Revision = ""

// Get returns the version and the revision of the running binary.
func Get() (version, revision string) {
	version, revision = Version, Revision
	if revision != "" {
		return version, revision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version, "unknown"
	}
	revision = "unknown"
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		revision += "-dirty"
	}
	return version, revision
}

// String is the line that `<program> --version` prints.
func String(program string) string {
	v, r := Get()
	return fmt.Sprintf("%s %s (revision %s, %s, %s/%s)", program, v, r, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
