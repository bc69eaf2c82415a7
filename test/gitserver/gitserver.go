// Package gitserver serves Git repositories over smart HTTP on 127.0.0.1, for Flux's
// source-controller to clone: `git http-backend` (Git's own server side of the protocol)
// runs behind net/http/cgi, one process per request. Repositories are bare directories
// under a root; Repo is a working clone that commits and pushes to one of them.
package gitserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Server is a running Git server.
type Server struct {
	// Root holds the bare repositories, <name>.git.
	Root string
	// URL is http://127.0.0.1:<port>; a repository is at URL/<name>.git.
	URL string

	srv *http.Server
	ln  net.Listener
}

// Options configure Start.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0 (a free port).
	Addr string
	// Push lets clients push over HTTP (git-receive-pack). Git refuses it by default
	// unless the request is authenticated; a loopback server for local runs lets a
	// person push to it. Tests commit through Repo, which pushes to the directory.
	Push bool
}

// Start serves the bare repositories under root until Close.
func Start(root string, o Options) (*Server, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("the Git server needs git installed: %w", err)
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	env := []string{
		"GIT_PROJECT_ROOT=" + root,
		// Every repository under root is served, without a git-daemon-export-ok file.
		"GIT_HTTP_EXPORT_ALL=1",
	}
	if o.Push {
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true")
	}
	backend := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Dir:  root,
		Env:  env,
		// Keep the CGI child's environment to what it needs (PATH finds git's helpers).
		InheritEnv: []string{"PATH", "HOME"},
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("git server: %w", err)
	}
	s := &Server{Root: root, URL: "http://" + ln.Addr().String(), ln: ln}
	s.srv = &http.Server{Handler: onlyRepositories(backend), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// onlyRepositories lets through the paths of the smart HTTP protocol (info/refs,
// git-upload-pack, git-receive-pack) of a <name>.git repository, and nothing else.
func onlyRepositories(next http.Handler) http.Handler {
	path := regexp.MustCompile(`^/[A-Za-z0-9._-]+\.git/(info/refs|git-upload-pack|git-receive-pack)$`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !path.MatchString(r.URL.Path) || strings.Contains(r.URL.Path, "..") {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// RepoURL is the clone URL of repository name.
func (s *Server) RepoURL(name string) string { return s.URL + "/" + name + ".git" }

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CreateRepo creates the bare repository name (default branch main) if it does not exist
// yet, and returns its directory.
func (s *Server) CreateRepo(ctx context.Context, name string) (string, error) {
	if !repoName.MatchString(name) || strings.HasSuffix(name, ".git") {
		return "", fmt.Errorf("repository name %q: want letters, digits, '.', '_' or '-', without .git", name)
	}
	dir := filepath.Join(s.Root, name+".git")
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		return dir, nil
	}
	if _, err := run(ctx, "", "init", "--quiet", "--bare", "--initial-branch=main", dir); err != nil {
		return "", err
	}
	return dir, nil
}

// Repo is a working clone of a served repository; Commit pushes to it.
type Repo struct {
	// Dir is the working tree.
	Dir string
	// Branch is the branch commits go to.
	Branch string
	bare   string
}

// Clone creates repository name (if needed) and a working clone of it in dir, which must
// not exist or be empty.
func (s *Server) Clone(ctx context.Context, name, dir string) (*Repo, error) {
	bare, err := s.CreateRepo(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, err := run(ctx, "", "init", "--quiet", "--initial-branch=main", dir); err != nil {
		return nil, err
	}
	if _, err := run(ctx, dir, "remote", "add", "origin", bare); err != nil {
		return nil, err
	}
	return &Repo{Dir: dir, Branch: "main", bare: bare}, nil
}

// WriteFile writes a file of the working tree (rel is slash-separated, inside the tree).
func (r *Repo) WriteFile(rel string, data []byte) error {
	clean := filepath.Clean(filepath.FromSlash(rel))
	if filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) || clean == ".." {
		return fmt.Errorf("%q is not a path inside the repository", rel)
	}
	path := filepath.Join(r.Dir, clean)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// Commit records every change of the working tree as one commit, pushes it, and returns
// its SHA. A commit with no change is an error: a test that means to change the
// repository and does not is wrong.
func (r *Repo) Commit(ctx context.Context, message string) (string, error) {
	if _, err := run(ctx, r.Dir, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := run(ctx, r.Dir, "commit", "--quiet", "-m", message); err != nil {
		return "", err
	}
	sha, err := run(ctx, r.Dir, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	if _, err := run(ctx, r.Dir, "push", "--quiet", "origin", "HEAD:refs/heads/"+r.Branch); err != nil {
		return "", err
	}
	return sha, nil
}

// run runs git with a fixed identity and no user or system configuration, so that the
// machine's settings (signing, hooks, templates) do not change what a test commits.
func run(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Herald tests", "GIT_AUTHOR_EMAIL=tests@herald.invalid",
		"GIT_COMMITTER_NAME=Herald tests", "GIT_COMMITTER_EMAIL=tests@herald.invalid",
		"GIT_TERMINAL_PROMPT=0",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = ctx.Err()
		}
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
