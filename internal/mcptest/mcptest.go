// Package mcptest connects an in-process MCP client to a server, for tests: started,
// initialized, and closed when the test ends.
package mcptest

import (
	"context"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// Connect returns an initialized in-process client of s; it is closed when tb ends.
func Connect(tb testing.TB, s *mcpserver.MCPServer) *client.Client {
	tb.Helper()
	return ConnectWith(tb, s)
}

// ConnectWith is Connect with client options (an elicitation handler, a protocol era).
func ConnectWith(tb testing.TB, s *mcpserver.MCPServer, opts ...client.ClientOption) *client.Client {
	tb.Helper()
	c, err := client.NewInProcessClientWithOptions(s, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	if err := c.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		tb.Fatal(err)
	}
	return c
}
