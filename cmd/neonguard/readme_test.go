package main

import (
	"os"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/tools"
)

// The README documents every setting and every tool; this keeps it true when either changes.
func TestREADMEDocumentsEverySettingAndTool(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range config.Settings() {
		if !strings.Contains(readme, "`"+s.Key+"`") || !strings.Contains(readme, "`"+s.Env+"`") {
			t.Errorf("README does not document setting %s (%s)", s.Key, s.Env)
		}
	}
	for _, name := range tools.Names() {
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README does not document tool %s", name)
		}
	}
}

// The README's configuration example must load and validate.
func TestREADMEConfigExampleIsValid(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	if !ok {
		t.Fatal("README has no yaml example")
	}
	example, _, _ := strings.Cut(rest, "```")
	path := t.TempDir() + "/neonguard.yaml"
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(k string) string {
		if k == "HOME" {
			return t.TempDir()
		}
		return ""
	})
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("README example: %v", err)
	}
	if _, err := cfg.Policy.Tier("team"); err != nil {
		t.Fatalf("README example's team tier: %v", err)
	}
}
