package arch

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/neonguard/neonguard/"

type rule struct {
	allowed map[string]bool
	mcp     bool
}

// readMap parses the package map table of docs/architecture.md.
func readMap(t *testing.T) map[string]rule {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkg := regexp.MustCompile("`([^`]+)`")
	rules := map[string]rule{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "package-map:begin"):
			in = true
			continue
		case strings.Contains(line, "package-map:end"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Fatalf("package map row %q: want | package | may import | mcp |", line)
		}
		name := pkg.FindStringSubmatch(cells[1])
		if name == nil {
			t.Fatalf("package map row %q has no package", line)
		}
		r := rule{allowed: map[string]bool{}, mcp: strings.TrimSpace(cells[3]) == "mcp"}
		for _, m := range pkg.FindAllStringSubmatch(cells[2], -1) {
			r.allowed[m[1]] = true
		}
		rules[name[1]] = r
	}
	if len(rules) == 0 {
		t.Fatal("no package map in docs/architecture.md")
	}
	return rules
}

// TestImportsFollowTheArchitecture fails when a package imports a module package its row does
// not allow, uses the MCP library without the mark, or is missing from the map.
func TestImportsFollowTheArchitecture(t *testing.T) {
	rules := readMap(t)
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		seen[name] = true
		r, ok := rules[name]
		if !ok {
			t.Errorf("%s is not in docs/architecture.md's package map: add its row", name)
			continue
		}
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, module):
				if dep := strings.TrimPrefix(imp, module); !r.allowed[dep] {
					t.Errorf("%s imports %s, which its row of the package map does not allow", name, dep)
				}
			case strings.HasPrefix(imp, "github.com/mark3labs/mcp-go") && !r.mcp:
				t.Errorf("%s imports the MCP library (%s): only transports and tool declarations may", name, imp)
			}
		}
	}
	var stale []string
	for name := range rules {
		if !seen[name] {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	if len(stale) > 0 {
		t.Errorf("the package map lists packages that do not exist: %v", stale)
	}
}
