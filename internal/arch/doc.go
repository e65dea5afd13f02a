// Package arch holds the test that keeps docs/architecture.md's package map true: every
// package of the module is in the map and imports only what its row allows.
package arch
