package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// MarkedBlocks returns the fenced code blocks of a README that follow `<!-- readme-test: NAME -->`
// lines, by NAME: the tests run or apply them as written, so the README cannot drift from what
// works.
func MarkedBlocks(readme []byte) (map[string]string, error) {
	blocks := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readme))
	var name string
	var body strings.Builder
	inBlock := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inBlock && strings.HasPrefix(line, "```"):
			blocks[name] = body.String()
			name, inBlock = "", false
			body.Reset()
		case inBlock:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "<!-- readme-test:"):
			name = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "<!-- readme-test:"), "-->"))
			if _, dup := blocks[name]; dup {
				return nil, fmt.Errorf("two README blocks are marked %q", name)
			}
		case name != "" && strings.HasPrefix(line, "```"):
			inBlock = true
		case name != "" && strings.TrimSpace(line) != "":
			return nil, fmt.Errorf("the marker readme-test: %s is not followed by a code block", name)
		}
	}
	if inBlock {
		return nil, fmt.Errorf("the README block %q is not closed", name)
	}
	return blocks, sc.Err()
}
