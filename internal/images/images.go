// Package images builds Herald's container images without Docker: each is a static Go binary
// (CGO_ENABLED=0) for every platform, on an empty base, in one OCI image index, built with
// go-containerregistry. `make images` (hack/images) writes them as OCI layouts and pushes them
// when given a registry; the tests unpack and run them.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	gcrname "github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Binary is a command of this module that becomes an image.
type Binary struct {
	// Name is the image's and the binary's name (the entrypoint is /<Name>).
	Name string
	// Package is the Go package, e.g. ./cmd/herald.
	Package string
}

// Binaries are the images a release publishes.
var Binaries = []Binary{
	{Name: "herald", Package: "./cmd/herald"},
	{Name: "loadtester", Package: "./cmd/loadtester"},
}

// DefaultPlatforms are the platforms of every image.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// User is the numeric user and group the images run as (distroless's "nonroot").
const User = 65532

// The OCI annotation and label keys the images carry.
const (
	LabelVersion  = "org.opencontainers.image.version"
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
	LabelLicenses = "org.opencontainers.image.licenses"
)

// VersionPackage is where the binaries' version is set at link time.
const VersionPackage = "github.com/herald-rollouts/herald/internal/version"

// Options say what to build.
type Options struct {
	// Root is the module's root directory.
	Root string
	// Version, Revision and Source go into the binaries (Version, Revision) and the labels.
	Version, Revision, Source string
	// Created is the images' creation time, also every file's modification time, so that
	// the same commit built twice gives the same image (default: the Unix epoch).
	Created time.Time
	// Platforms to build for (default DefaultPlatforms).
	Platforms []v1.Platform
	// Log receives one line per step (nil: none).
	Log io.Writer
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Tag is the image tag of a version: the version without a leading "v" (v1.2.3 is
// tagged 1.2.3, as Flagger's images are), or an error if it cannot be a tag.
func Tag(version string) (string, error) {
	tag := strings.TrimPrefix(version, "v")
	if !tagRE.MatchString(tag) {
		return "", fmt.Errorf("version %q does not make an image tag (letters, digits, '_', '.', '-')", version)
	}
	return tag, nil
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Build compiles b for every platform and returns the image index.
func Build(ctx context.Context, o Options, b Binary) (v1.ImageIndex, error) {
	if o.Version == "" {
		return nil, fmt.Errorf("building %s: no version", b.Name)
	}
	platforms := o.Platforms
	if len(platforms) == 0 {
		platforms = DefaultPlatforms
	}
	tmp, err := os.MkdirTemp("", "herald-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	labels := map[string]string{
		LabelVersion:  o.Version,
		LabelSource:   o.Source,
		LabelRevision: o.Revision,
		LabelCreated:  o.Created.UTC().Format(time.RFC3339),
		LabelTitle:    b.Name,
		LabelLicenses: "Apache-2.0",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		start := time.Now()
		bin := filepath.Join(tmp, b.Name+"-"+p.OS+"-"+p.Architecture)
		if err := goBuild(ctx, o, b, p, bin); err != nil {
			return nil, err
		}
		img, err := image(o, b, p, bin, labels)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s/%s: %w", b.Name, p.OS, p.Architecture, err)
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
		o.logf("built %s for %s/%s in %s", b.Name, p.OS, p.Architecture, time.Since(start).Round(100*time.Millisecond))
	}
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

// goBuild compiles a static binary: no cgo, no paths of this machine, no debug information.
func goBuild(ctx context.Context, o Options, b Binary, p v1.Platform, out string) error {
	ldflags := fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Revision=%s", VersionPackage, o.Version, VersionPackage, o.Revision)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, b.Package)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w\n%s", b.Package, p.OS, p.Architecture, err, output)
	}
	return nil
}

// image puts the binary on an empty base, with what a non-root static binary expects to find.
func image(o Options, b Binary, p v1.Platform, bin string, labels map[string]string) (v1.Image, error) {
	layerTar, err := rootfs(b.Name, bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.Created}, CreatedBy: "herald hack/images: " + b.Package, Comment: "static binary",
	}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: o.Created}
	cfg.Config.Entrypoint = []string{"/" + b.Name}
	cfg.Config.User = fmt.Sprintf("%d:%d", User, User)
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/"}
	cfg.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels).(v1.Image), nil
}

// rootfs is the image's one layer: the binary, a writable /tmp (Herald's default certificate
// directory is under it), the non-root user's home, and /etc/passwd and /etc/group naming it.
func rootfs(name, bin string, mtime time.Time) ([]byte, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(path string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path, Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, content []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(content)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(content)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", User, User)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", User)
	steps := []func() error{
		func() error { return dir("etc/", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("home/", 0o755, 0) },
		func() error { return dir("home/nonroot/", 0o700, User) },
		func() error { return dir("tmp/", 0o1777, 0) },
		func() error { return file(name, 0o755, data) },
		tw.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// WriteLayout writes idx as an OCI image layout in dir (replacing what was there), its one
// manifest named by tag.
func WriteLayout(dir, tag string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
}

// ReadLayout reads back the image index that WriteLayout wrote in dir.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	outer, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := outer.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s holds %d manifests, want one image index", dir, len(m.Manifests))
	}
	return outer.ImageIndex(m.Manifests[0].Digest)
}

// Size is the compressed size of an image index: its manifests, configs and layers.
func Size(idx v1.ImageIndex) (int64, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return 0, err
		}
		total += d.Size
		mf, err := img.Manifest()
		if err != nil {
			return 0, err
		}
		total += mf.Config.Size
		for _, l := range mf.Layers {
			total += l.Size
		}
	}
	return total, nil
}

// Push pushes idx as <repository>/<name>:<tag> with the credentials of the Docker config
// (~/.docker/config.json, as `crane auth login` or `docker login` write it), and returns the
// reference pushed.
func Push(ctx context.Context, repository, name, tag string, idx v1.ImageIndex, opts ...remote.Option) (string, error) {
	ref, err := gcrname.NewTag(strings.TrimSuffix(repository, "/") + "/" + name + ":" + tag)
	if err != nil {
		return "", fmt.Errorf("image reference for %s: %w", name, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	return ref.String(), nil
}
