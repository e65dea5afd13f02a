// Package prompts declares neonguard's MCP prompts: workflow guides that tell an agent in which
// order to call the tools (tools/) so that a change can always be undone. One file per prompt;
// the texts are Markdown templates embedded in the binary.
package prompts

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/neonguard/neonguard/internal/truncate"
)

//go:embed templates/*.md
var templates embed.FS

// All returns every prompt, in a stable order.
func All() []server.ServerPrompt {
	return []server.ServerPrompt{SafeMigration(), FeatureBranch()}
}

// arg is one prompt argument. check, when set, validates a non-empty value.
type arg struct {
	name, description string
	required          bool
	max               int // bytes
	check             func(string) error
}

// spec is a prompt's static description.
type spec struct {
	name, title, description string
	args                     []arg
	// data derives extra template values from the checked arguments.
	data func(args map[string]string) map[string]string
}

// identRE mirrors tools' identifier shape (database ids, branch names).
var identRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkIdent(s string) error {
	if !identRE.MatchString(s) {
		return fmt.Errorf("letters, digits, '.', '_' and '-' only")
	}
	return nil
}

// newPrompt builds the prompt and its handler. The template is parsed here, once: a broken
// template is a bug caught by the tests, never a run-time file read.
func newPrompt(s spec) server.ServerPrompt {
	tmpl := template.Must(template.New(s.name+".md").Option("missingkey=error").ParseFS(templates, "templates/"+s.name+".md"))
	opts := []mcp.PromptOption{mcp.WithPromptTitle(s.title), mcp.WithPromptDescription(s.description)}
	names := make([]string, 0, len(s.args))
	for _, a := range s.args {
		ao := []mcp.ArgumentOption{mcp.ArgumentDescription(a.description)}
		if a.required {
			ao = append(ao, mcp.RequiredArgument())
		}
		opts = append(opts, mcp.WithArgument(a.name, ao...))
		names = append(names, a.name)
	}
	return server.ServerPrompt{
		Prompt: mcp.NewPrompt(s.name, opts...),
		Handler: func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			// mcp-go does not enforce required arguments, and its error text reaches the
			// client as is: keep it clear and free of the values themselves.
			for k := range req.Params.Arguments {
				if !slices.Contains(names, k) {
					return nil, fmt.Errorf("%s: unknown argument %q (allowed: %s)", s.name, truncate.UTF8(k, 64), strings.Join(names, ", "))
				}
			}
			vals := make(map[string]string, len(s.args)+2)
			for _, a := range s.args {
				v := strings.TrimSpace(req.Params.Arguments[a.name])
				switch {
				case v == "" && a.required:
					return nil, fmt.Errorf("%s: missing required argument %s (%s)", s.name, a.name, a.description)
				case len(v) > a.max:
					return nil, fmt.Errorf("%s: argument %s is too long (at most %d bytes)", s.name, a.name, a.max)
				case v != "" && a.check != nil:
					if err := a.check(v); err != nil {
						return nil, fmt.Errorf("%s: argument %s: %v", s.name, a.name, err)
					}
				}
				vals[a.name] = v
			}
			if s.data != nil {
				for k, v := range s.data(vals) {
					vals[k] = v
				}
			}
			var buf bytes.Buffer
			if err := tmpl.Execute(&buf, vals); err != nil {
				return nil, fmt.Errorf("%s: rendering failed", s.name) // a template bug
			}
			return mcp.NewGetPromptResult(s.description, []mcp.PromptMessage{
				mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent(buf.String())),
			}), nil
		},
	}
}
