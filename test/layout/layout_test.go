// Package layout checks that the README's layout table describes the tree as it is.
package layout

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/herald-rollouts/herald/test/cluster"
)

// Every folder the README's layout table names exists, and every top-level folder of the
// repository (and every package folder under internal/ and test/) is in the table, as itself or
// under a parent row.
func TestLayoutTableMatchesTree(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("the README has no Layout section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(table, -1)
	listed := map[string]bool{}
	for _, r := range rows {
		folder := strings.TrimSuffix(r[1], "/")
		listed[folder] = true
		if st, err := os.Stat(filepath.Join(root, folder)); err != nil || !st.IsDir() {
			t.Errorf("the layout table names %q, which is not a folder of the tree", r[1])
		}
	}
	covered := func(dir string) bool {
		for d := dir; d != "." && d != "/"; d = filepath.Dir(d) {
			if listed[d] {
				return true
			}
		}
		for l := range listed { // a folder described by the rows of its children
			if strings.HasPrefix(l, dir+"/") {
				return true
			}
		}
		return false
	}
	check := func(parent string) {
		entries, err := os.ReadDir(filepath.Join(root, parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := filepath.Join(parent, e.Name())
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || name == "bin" || name == "hack" {
				continue
			}
			if !covered(name) {
				t.Errorf("folder %s is not in the README's layout table", name)
			}
		}
	}
	check(".")
	check("internal")
	check("test")
}
