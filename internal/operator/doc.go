// Package operator holds the operator's use cases, shared by the `neonguard tenant` and
// `neonguard jobs` commands and the admin tool set (which declares the interface it needs,
// tools.AdminUseCases), so their rules live in one place:
//
//   - tenants and their bearer tokens (tier names, tenant ids, scopes, secrets shown once);
//   - a tenant's databases: deletion with the name repeated, inactivity reports (through the
//     guard, which holds each database's lock and its Neon org);
//   - tier changes as durable jobs (TierChanges): a tier change moves every project of the
//     tenant to the target tier's Neon org and applies the tier's settings, as a list of named,
//     idempotent steps recorded in the store (store.JobStore), so a crash at any point is
//     finished exactly once by the next `neonguard jobs resume` or `serve` start. A job is
//     claimed with a lease; the runner renews it, and one that stops renewing loses it.
package operator
