package controlplane

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"

	"github.com/google/uuid"
)

// Word lists for Neon-style ids ("adj-noun-12345678"). Kept as functions so
// the package holds no mutable globals.
func adjectives() []string {
	return []string{"aged", "bold", "calm", "cool", "crimson", "damp", "dry", "empty", "falling", "fancy",
		"floral", "frosty", "green", "hidden", "holy", "icy", "late", "lingering", "little", "lively",
		"long", "misty", "morning", "muddy", "old", "patient", "plain", "polished", "proud", "purple",
		"quiet", "rapid", "red", "restless", "rough", "round", "royal", "shiny", "shy", "silent",
		"small", "snowy", "soft", "solitary", "sparkling", "spring", "still", "summer", "sweet", "twilight",
		"wandering", "weathered", "white", "wild", "winter", "wispy", "withered", "young"}
}

func nouns() []string {
	return []string{"art", "band", "bar", "base", "bird", "block", "boat", "bonus", "bread", "breeze",
		"brook", "bush", "butterfly", "cake", "cell", "cherry", "cloud", "credit", "darkness", "dawn",
		"dew", "disk", "dream", "dust", "feather", "field", "fire", "firefly", "flower", "fog",
		"forest", "frog", "frost", "glade", "glitter", "grass", "hall", "hat", "haze", "heart",
		"hill", "king", "lab", "lake", "leaf", "limit", "math", "meadow", "mode", "moon",
		"morning", "mountain", "mouse", "mud", "night", "paper", "pine", "poetry", "pond", "queen",
		"rain", "recipe", "resonance", "rice", "river", "salad", "scene", "sea", "shadow", "shape",
		"silence", "sky", "smoke", "snow", "snowflake", "sound", "star", "sun", "sunset", "surf",
		"term", "thunder", "tooth", "tree", "truth", "union", "unit", "violet", "voice", "water",
		"waterfall", "wave", "wildflower", "wind", "wood"}
}

const (
	lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	digits     = "0123456789"
	mixedAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// randIndex returns a uniform random index in [0,n) from crypto/rand.
func randIndex(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// itself instead); keep the signature simple.
		panic(fmt.Sprintf("neonlocal: crypto/rand: %v", err))
	}
	return int(v.Int64())
}

func randString(alphabet string, n int) string {
	var b strings.Builder
	b.Grow(n)
	for range n {
		b.WriteByte(alphabet[randIndex(len(alphabet))])
	}
	return b.String()
}

func pick(words []string) string { return words[randIndex(len(words))] }

func newProjectID() string {
	return pick(adjectives()) + "-" + pick(nouns()) + "-" + randString(digits, 8)
}

func newPrefixedID(prefix string) string {
	return prefix + "-" + pick(adjectives()) + "-" + pick(nouns()) + "-" + randString(lowerAlnum, 8)
}

func newBranchID() string   { return newPrefixedID("br") }
func newEndpointID() string { return newPrefixedID("ep") }
func newSnapshotID() string { return newPrefixedID("snap") }
func newOperationID() string {
	return uuid.NewString()
}
func newAPIKey() string   { return "napi_" + randString(lowerAlnum, 64) }
func newPassword() string { return "npg_" + randString(mixedAlnum, 12) }
func newOrgID(kind string) string {
	return "org-" + kind + "-" + pick(nouns()) + "-" + randString(digits, 8)
}
func newRequestID() string { return uuid.NewString() }
