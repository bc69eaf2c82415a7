package gitserver

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Start(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCloneOverHTTPSeesEachCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, Options{})
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %s is not on loopback", s.URL)
	}
	repo, err := s.Clone(ctx, "apps", filepath.Join(t.TempDir(), "work"))
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.WriteFile("app/configmap.yaml", []byte("v: 1\n")); err != nil {
		t.Fatal(err)
	}
	first, err := repo.Commit(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.WriteFile("app/configmap.yaml", []byte("v: 2\n")); err != nil {
		t.Fatal(err)
	}
	second, err := repo.Commit(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	if first == second || len(second) != 40 {
		t.Fatalf("commits %q and %q", first, second)
	}

	// A client clones over smart HTTP and gets the last commit and its content.
	clone := filepath.Join(t.TempDir(), "clone")
	if _, err := run(ctx, "", "clone", "--quiet", "--branch=main", s.RepoURL("apps"), clone); err != nil {
		t.Fatal(err)
	}
	head, err := run(ctx, clone, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if head != second {
		t.Fatalf("cloned HEAD %s, want %s", head, second)
	}
	b, err := os.ReadFile(filepath.Join(clone, "app", "configmap.yaml"))
	if err != nil || string(b) != "v: 2\n" {
		t.Fatalf("cloned file = %q, %v", b, err)
	}

	// Pushing over HTTP is refused unless enabled.
	if err := os.WriteFile(filepath.Join(clone, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, clone, "add", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, clone, "commit", "--quiet", "-m", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, clone, "push", "--quiet", "origin", "HEAD:main"); err == nil {
		t.Fatal("a push over HTTP was accepted by a server without Push")
	}
}

func TestPushOverHTTPWhenEnabled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, Options{Push: true})
	if _, err := s.CreateRepo(ctx, "apps"); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "work")
	if _, err := run(ctx, "", "clone", "--quiet", s.RepoURL("apps"), work); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, work, "add", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, work, "commit", "--quiet", "-m", "a"); err != nil {
		t.Fatal(err)
	}
	sha, _ := run(ctx, work, "rev-parse", "HEAD")
	if _, err := run(ctx, work, "push", "--quiet", "origin", "HEAD:main"); err != nil {
		t.Fatal(err)
	}
	out, err := run(ctx, "", "ls-remote", s.RepoURL("apps"), "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, sha) {
		t.Fatalf("ls-remote = %q, want %s", out, sha)
	}
}

func TestOnlyRepositoryPathsAreServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startServer(t, Options{})
	if _, err := s.CreateRepo(ctx, "apps"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/apps.git/info/refs?service=git-upload-pack": http.StatusOK,
		"/apps.git/HEAD":                                 http.StatusNotFound, // the dumb protocol's files
		"/apps.git/config":                               http.StatusNotFound,
		"/../etc/passwd":                                 http.StatusNotFound,
		"/apps.git/../apps.git/info/refs":                http.StatusNotFound,
		"/missing.git/info/refs?service=git-upload-pack": http.StatusNotFound,
	} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	for _, bad := range []string{"", "a/b", "../x", "x.git", "-x"} {
		if _, err := s.CreateRepo(ctx, bad); err == nil {
			t.Errorf("CreateRepo(%q) succeeded", bad)
		}
	}
	repo, err := s.Clone(ctx, "other", filepath.Join(t.TempDir(), "w"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../x", "/etc/x", "..", "."} {
		if err := repo.WriteFile(bad, nil); err == nil {
			t.Errorf("WriteFile(%q) succeeded", bad)
		}
	}
	if _, err := repo.Commit(ctx, "nothing"); err == nil {
		t.Error("a commit without changes succeeded")
	}
}
