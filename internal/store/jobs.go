package store

// JobStore keeps durable jobs: multi-step operations (a tier change) whose progress survives a
// crash, so `neonguard jobs resume` or the next start finishes each exactly once.
type JobStore interface {
}
