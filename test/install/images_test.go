package install

import (
	"archive/tar"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/herald-rollouts/herald/internal/images"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

const (
	testVersion  = "v0.0.0-test.1"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
)

var testCreated = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

var _ = Describe("The images", Label("images"), Ordered, func() {
	// rootfs[name][arch] is the unpacked file system of an image for one platform.
	rootfs := map[string]map[string]string{}
	indexes := map[string]v1.ImageIndex{}

	BeforeAll(func(ctx SpecContext) {
		out, err := os.MkdirTemp("", "herald-images-test-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, out)
		opts := images.Options{Root: root, Version: testVersion, Revision: testRevision,
			Source: "https://github.com/herald-rollouts/herald", Created: testCreated, Log: GinkgoWriter}
		for _, b := range images.Binaries {
			idx, err := images.Build(ctx, opts, b)
			Expect(err).NotTo(HaveOccurred())
			dir := filepath.Join(out, b.Name)
			Expect(images.WriteLayout(dir, "0.0.0-test.1", idx)).To(Succeed())
			// What is checked is what was written: read back from the layout.
			indexes[b.Name], err = images.ReadLayout(dir)
			Expect(err).NotTo(HaveOccurred())
			size, err := images.Size(indexes[b.Name])
			Expect(err).NotTo(HaveOccurred())
			AddReportEntry(b.Name+" image size (compressed, both platforms)", fmt.Sprintf("%.1f MiB", float64(size)/(1<<20)))
			// Unpacked once for the specs below, as a container runtime would.
			rootfs[b.Name] = map[string]string{}
			m, err := indexes[b.Name].IndexManifest()
			Expect(err).NotTo(HaveOccurred())
			for _, d := range m.Manifests {
				Expect(d.Platform).NotTo(BeNil())
				img, err := indexes[b.Name].Image(d.Digest)
				Expect(err).NotTo(HaveOccurred())
				dir := filepath.Join(out, "rootfs-"+b.Name+"-"+d.Platform.Architecture)
				Expect(extract(img, dir)).To(Succeed())
				rootfs[b.Name][d.Platform.Architecture] = dir
			}
		}
	}, NodeTimeout(30*time.Minute))

	It("are OCI image indexes of linux/amd64 and linux/arm64 images that run as 65532 with OCI labels", func() {
		for name, idx := range indexes {
			mt, err := idx.MediaType()
			Expect(err).NotTo(HaveOccurred())
			Expect(mt).To(Equal(types.OCIImageIndex))
			m, err := idx.IndexManifest()
			Expect(err).NotTo(HaveOccurred())
			Expect(m.Annotations).To(HaveKeyWithValue(images.LabelVersion, testVersion), name)
			var platforms []string
			for _, d := range m.Manifests {
				Expect(d.Platform).NotTo(BeNil())
				platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
				img, err := idx.Image(d.Digest)
				Expect(err).NotTo(HaveOccurred())
				cfg, err := img.ConfigFile()
				Expect(err).NotTo(HaveOccurred())
				Expect(cfg.OS + "/" + cfg.Architecture).To(Equal(d.Platform.OS + "/" + d.Platform.Architecture))
				Expect(cfg.Config.User).To(Equal("65532:65532"))
				Expect(cfg.Config.Entrypoint).To(Equal([]string{"/" + name}))
				Expect(cfg.Config.Labels).To(And(
					HaveKeyWithValue(images.LabelVersion, testVersion),
					HaveKeyWithValue(images.LabelRevision, testRevision),
					HaveKeyWithValue(images.LabelSource, "https://github.com/herald-rollouts/herald"),
					HaveKeyWithValue(images.LabelCreated, "2026-12-01T12:00:00Z"),
				))
			}
			Expect(platforms).To(ConsistOf("linux/amd64", "linux/arm64"), name)
		}
	})

	It("hold static binaries for their platform, with the CA roots built in, and a writable /tmp", func() {
		machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
		for name, byArch := range rootfs {
			for arch, dir := range byArch {
				bin := filepath.Join(dir, name)
				f, err := elf.Open(bin)
				Expect(err).NotTo(HaveOccurred())
				Expect(f.Machine).To(Equal(machines[arch]), "%s/%s", name, arch)
				for _, p := range f.Progs {
					Expect(p.Type).NotTo(Equal(elf.PT_INTERP), "%s/%s is dynamically linked", name, arch)
				}
				f.Close()
				info, err := buildinfo.ReadFile(bin)
				Expect(err).NotTo(HaveOccurred())
				settings := map[string]string{}
				for _, s := range info.Settings {
					settings[s.Key] = s.Value
				}
				Expect(settings).To(HaveKeyWithValue("CGO_ENABLED", "0"))
				Expect(settings).To(HaveKeyWithValue("GOARCH", arch))
				var deps []string
				for _, d := range info.Deps {
					deps = append(deps, d.Path)
				}
				Expect(deps).To(ContainElement("golang.org/x/crypto/x509roots/fallback"), "%s/%s has no CA roots of its own", name, arch)
				st, err := os.Stat(filepath.Join(dir, "tmp"))
				Expect(err).NotTo(HaveOccurred())
				Expect(st.Mode()&os.ModeSticky != 0 && st.Mode().Perm() == 0o777).To(BeTrue(), "/tmp mode %v", st.Mode())
				Expect(readFile(filepath.Join(dir, "etc", "passwd"))).To(ContainSubstring(":65532:65532:"))
			}
		}
	})

	It("are pushed as <repository>/<name>:<tag> and pulled back unchanged (a registry on loopback)", func(ctx SpecContext) {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(GinkgoWriter, "registry: ", 0))))
		DeferCleanup(srv.Close)
		repo := strings.TrimPrefix(srv.URL, "http://") + "/herald-rollouts"
		for name, idx := range indexes {
			ref, err := images.Push(ctx, repo, name, "0.0.0-test.1", idx)
			Expect(err).NotTo(HaveOccurred())
			Expect(ref).To(Equal(repo + "/" + name + ":0.0.0-test.1"))
			tag, err := gcrname.NewTag(ref)
			Expect(err).NotTo(HaveOccurred())
			pulled, err := remote.Index(tag, remote.WithContext(ctx))
			Expect(err).NotTo(HaveOccurred())
			want, err := idx.Digest()
			Expect(err).NotTo(HaveOccurred())
			Expect(pulled.Digest()).To(Equal(want))
			m, err := pulled.IndexManifest()
			Expect(err).NotTo(HaveOccurred())
			Expect(m.Manifests).To(HaveLen(2))
		}
	})

	It("run: --version names the release, the manager and the load tester serve /healthz", func(ctx SpecContext) {
		for _, name := range []string{"herald", "loadtester"} {
			bin := filepath.Join(rootfs[name]["amd64"], name)
			out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), string(out))
			Expect(string(out)).To(HavePrefix(name+" "+testVersion+" (revision "+testRevision), string(out))
		}

		ports, err := cluster.FreePorts(3)
		Expect(err).NotTo(HaveOccurred())
		// The manager as the image starts it, against the local control plane; its webhooks are
		// the chart's business, so they stay off here.
		manager, err := harness.StartProcess(ctx, harness.ProcessOptions{
			Name: "herald (image)", Binary: filepath.Join(rootfs["herald"]["amd64"], "herald"),
			Args: []string{"--kubeconfig=" + env.Kubeconfig, "--install-crds", "--enable-webhooks=false",
				"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(ports[0]),
				"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(ports[1])},
			Out: GinkgoWriter, ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[1]), ReadyTimeout: 90 * time.Second,
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(manager.Stop)
		Expect(httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]))).To(ContainSubstring(`flagger_info{mesh_provider="istio",version="` + testVersion + `"} 1`))

		loadtester, err := harness.StartProcess(ctx, harness.ProcessOptions{
			Name: "loadtester (image)", Binary: filepath.Join(rootfs["loadtester"]["amd64"], "loadtester"),
			Args: []string{"-port=" + strconv.Itoa(ports[2]), "-state-dir="},
			Out:  GinkgoWriter, ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[2]), ReadyTimeout: 30 * time.Second,
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(loadtester.Stop)
	}, SpecTimeout(3*time.Minute))
})

// extract unpacks an image's flattened file system (mutate.Extract) into dir.
func extract(img v1.Image, dir string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			return fmt.Errorf("image path %q leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, os.FileMode(h.Mode&0o777)|modeBits(h.Mode)); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777))
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, io.LimitReader(tr, 512<<20)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected entry %q of type %c", h.Name, h.Typeflag)
		}
	}
}

// modeBits turns tar's setuid/setgid/sticky bits into Go's.
func modeBits(mode int64) os.FileMode {
	var m os.FileMode
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func httpGet(url string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.StatusCode).To(Equal(http.StatusOK), url)
	return string(b)
}

// run runs a command and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
