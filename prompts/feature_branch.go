package prompts

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mark3labs/mcp-go/server"
)

// ttlRE is the shape tools' ttl accepts: "24h", "1h30m", "7d", "1d12h".
var ttlRE = regexp.MustCompile(`^([0-9]+d)?([0-9]+(\.[0-9]+)?[hms])*$`)

func checkTTL(s string) error {
	if !ttlRE.MatchString(s) {
		return fmt.Errorf("must be a duration like 24h or 7d")
	}
	return nil
}

// FeatureBranch is feature_branch: develop on an expiring dev branch, replay on main with
// safe_migration, delete the branch.
func FeatureBranch() server.ServerPrompt {
	return newPrompt(spec{
		name:        "feature_branch",
		title:       "Feature branch",
		description: "Develop a database change on an isolated, expiring dev branch, then replay it safely on main.",
		args: []arg{
			{name: "database_id", description: "database to branch (from list_databases)", required: true, max: 64, check: checkIdent},
			{name: "feature", description: "short name or description of the feature", required: true, max: 500},
			{name: "ttl", description: "branch lifetime, e.g. 24h or 7d (default: the tier's)", max: 32, check: checkTTL},
		},
		data: func(args map[string]string) map[string]string {
			return map[string]string{"branch": branchName(args["feature"])}
		},
	})
}

// branchName derives a create_dev_branch name from the feature: lower-case ASCII letters and
// digits joined by '-', at most 40 bytes, never "main".
func branchName(feature string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(feature) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			if b.Len() >= 40 {
				break
			}
		} else {
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	switch name {
	case "":
		return "feature"
	case "main":
		return "feature-main"
	}
	return name
}
