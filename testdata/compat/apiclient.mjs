// Runs @neondatabase/api-client against `neonguard local`. Env: NEON_API_HOST, PERSONAL_KEY,
// ORG_KEY (the free org's), ORG_ID (its id). Prints "ok <case>"; exits 1 on the first failure.
import { createApiClient } from "@neondatabase/api-client";

const env = process.env;
function fail(msg) {
  console.error("FAIL " + msg);
  process.exit(1);
}
// An unexpected error: one line, with the API's answer when there is one (not axios's dump).
process.on("uncaughtException", (e) => {
  const res = e?.response ? ` -> ${e.response.status} ${JSON.stringify(e.response.data)} (${e.config?.method} ${e.config?.url})` : "";
  fail(`${e?.message ?? e}${res}`);
});
function ok(name) {
  console.log("ok " + name);
}
async function status(p) {
  try {
    return (await p).status;
  } catch (e) {
    if (e.response) return e.response.status;
    throw e;
  }
}
async function settle(api, projectId) {
  for (let i = 0; i < 300; i++) {
    const { data } = await api.listProjectOperations({ projectId, limit: 100 });
    if (data.operations.every((o) => ["finished", "skipped"].includes(o.status))) return;
    if (data.operations.some((o) => ["failed", "error", "cancelled"].includes(o.status))) fail(`operation failed: ${JSON.stringify(data.operations)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`operations of ${projectId} did not finish`);
}

const personal = createApiClient({ apiKey: env.PERSONAL_KEY, baseURL: env.NEON_API_HOST });
const org = createApiClient({ apiKey: env.ORG_KEY, baseURL: env.NEON_API_HOST });

// Account endpoints per key kind.
let { data } = await personal.getAuthDetails();
if (data.auth_method !== "api_key_user") fail(`personal getAuthDetails: ${JSON.stringify(data)}`);
const userId = data.account_id;
({ data } = await personal.getCurrentUserInfo());
if (data.id !== userId || !data.email) fail(`getCurrentUserInfo: ${JSON.stringify(data)}`);
({ data } = await personal.getCurrentUserOrganizations());
if (data.organizations.length !== 2 || !data.organizations.some((o) => o.id === env.ORG_ID)) fail(`personal orgs: ${JSON.stringify(data)}`);
ok("personal key: getAuthDetails, getCurrentUserInfo, getCurrentUserOrganizations (two orgs)");
({ data } = await org.getAuthDetails());
if (data.auth_method !== "api_key_org" || data.account_id !== env.ORG_ID) fail(`org getAuthDetails: ${JSON.stringify(data)}`);
({ data } = await org.getCurrentUserOrganizations());
if (data.organizations.length !== 1 || data.organizations[0].id !== env.ORG_ID) fail(`org key orgs: ${JSON.stringify(data)}`);
if ((await status(org.getCurrentUserInfo())) !== 404) fail("org key getCurrentUserInfo is not 404");
ok("org key: getAuthDetails (api_key_org), getCurrentUserOrganizations (its org), getCurrentUserInfo 404");
({ data } = await personal.getOrganization(env.ORG_ID));
if (data.id !== env.ORG_ID || data.managed_by !== "console") fail(`getOrganization: ${JSON.stringify(data)}`);
({ data } = await personal.getOrganizationMembers({ orgId: env.ORG_ID }));
if (data.members[0]?.member.user_id !== userId || data.members[0]?.member.role !== "admin") fail(`members: ${JSON.stringify(data)}`);
ok("getOrganization, getOrganizationMembers");

// listProjects({}) with the personal key of a user in two orgs: Neon answers 400 "org_id is required".
try {
  await personal.listProjects({});
  fail("listProjects({}) with the personal key succeeded");
} catch (e) {
  if (e.response?.status !== 400 || !String(e.response.data.message).includes("org_id is required")) fail(`listProjects({}): ${e}`);
}
ok("listProjects({}) with the personal key: 400 org_id is required");
({ data } = await personal.listProjects({ org_id: env.ORG_ID }));
({ data } = await org.listProjects({}));
({ data } = await personal.listSharedProjects({}));
ok("listProjects (org_id; org key), listSharedProjects");

// A project, branches, set as default, restore, connection URI.
({ data } = await org.createProject({ project: { name: "compat-api" } }));
const projectId = data.project.id, mainId = data.branch.id;
await settle(org, projectId);
({ data } = await org.createProjectBranch(projectId, { branch: { name: "dev" }, endpoints: [{ type: "read_write" }] }));
const devId = data.branch.id;
await settle(org, projectId);
({ data } = await org.setDefaultProjectBranch(projectId, devId));
if (!data.branch.default) fail(`setDefaultProjectBranch: ${JSON.stringify(data.branch)}`);
({ data } = await org.listProjectBranches({ projectId }));
const defaults = data.branches.filter((b) => b.default).map((b) => b.id);
if (JSON.stringify(defaults) !== JSON.stringify([devId])) fail(`defaults after set_as_default: ${defaults}`);
ok("createProject, createProjectBranch, setDefaultProjectBranch, listProjectBranches");
({ data } = await org.getConnectionUri({ projectId, branch_id: devId, database_name: "neondb", role_name: "neondb_owner" }));
if (!data.uri.startsWith("postgresql://")) fail(`getConnectionUri: ${JSON.stringify(data)}`);
({ data } = await org.restoreProjectBranch(projectId, mainId, { source_branch_id: devId, preserve_under_name: "main-before-restore" }));
await settle(org, projectId);
ok("getConnectionUri, restoreProjectBranch");
// Roles and databases of a branch: each change is an apply_config operation.
({ data } = await org.createProjectBranchRole(projectId, mainId, { role: { name: "compat_role" } }));
if (!data.role.password || !data.operations.some((o) => o.action === "apply_config")) fail(`createProjectBranchRole: ${JSON.stringify(data)}`);
const rolePassword = data.role.password;
await settle(org, projectId);
({ data } = await org.createProjectBranchDatabase(projectId, mainId, { database: { name: "compat_db", owner_name: "compat_role" } }));
if (data.database.owner_name !== "compat_role") fail(`createProjectBranchDatabase: ${JSON.stringify(data)}`);
await settle(org, projectId);
({ data } = await org.getProjectBranchRolePassword(projectId, mainId, "compat_role"));
if (data.password !== rolePassword) fail(`getProjectBranchRolePassword: ${JSON.stringify(data)}`);
({ data } = await org.getConnectionUri({ projectId, branch_id: mainId, database_name: "compat_db", role_name: "compat_role" }));
if (!data.uri.includes(`compat_role:${rolePassword}@`) || !data.uri.includes("/compat_db?")) fail(`getConnectionUri of the new role: ${JSON.stringify(data)}`);
({ data } = await org.resetProjectBranchRolePassword(projectId, mainId, "compat_role"));
if (!data.role.password || data.role.password === rolePassword) fail(`resetProjectBranchRolePassword: ${JSON.stringify(data)}`);
await settle(org, projectId);
({ data } = await org.updateProjectBranchDatabase(projectId, mainId, "compat_db", { database: { name: "compat_db2", owner_name: "neondb_owner" } }));
if (data.database.name !== "compat_db2") fail(`updateProjectBranchDatabase: ${JSON.stringify(data)}`);
await settle(org, projectId);
({ data } = await org.listProjectBranchDatabases(projectId, mainId));
if (!data.databases.some((d) => d.name === "compat_db2")) fail(`listProjectBranchDatabases: ${JSON.stringify(data)}`);
({ data } = await org.listProjectBranchRoles(projectId, mainId));
if (!data.roles.some((r) => r.name === "compat_role")) fail(`listProjectBranchRoles: ${JSON.stringify(data)}`);
await org.deleteProjectBranchDatabase(projectId, mainId, "compat_db2");
await settle(org, projectId);
await org.deleteProjectBranchRole(projectId, mainId, "compat_role");
await settle(org, projectId);
if ((await status(org.getProjectBranchRole(projectId, mainId, "compat_role"))) !== 404) fail("deleted role still found");
if ((await status(org.getProjectBranchDatabase(projectId, mainId, "compat_db2"))) !== 404) fail("deleted database still found");
ok("createProjectBranchRole, createProjectBranchDatabase, getProjectBranchRolePassword, getConnectionUri (new role), resetProjectBranchRolePassword, updateProjectBranchDatabase, listProjectBranchDatabases, listProjectBranchRoles, deleteProjectBranchDatabase, deleteProjectBranchRole");
const ds = await status(org.deleteProjectBranch({ projectId, branchId: devId }));
if (ds !== 400) fail(`deleting the default branch: ${ds}, want 400`);
await org.setDefaultProjectBranch(projectId, mainId);
ok("deleteProjectBranch of the default: 400");
// A project-scoped key (made with the personal key): its project only, no org-level actions.
({ data } = await personal.createOrgApiKey(env.ORG_ID, { key_name: "compat-project-key", project_id: projectId }));
const keyId = data.id;
const scoped = createApiClient({ apiKey: data.key, baseURL: env.NEON_API_HOST });
({ data } = await scoped.getAuthDetails());
if (data.auth_method !== "api_key_org" || data.account_id !== env.ORG_ID) fail(`project key getAuthDetails: ${JSON.stringify(data)}`);
({ data } = await scoped.getCurrentUserOrganizations());
if (data.organizations.length !== 1 || data.organizations[0].id !== env.ORG_ID) fail(`project key orgs: ${JSON.stringify(data)}`);
({ data } = await scoped.listProjects({}));
if (data.projects.length !== 1 || data.projects[0].id !== projectId) fail(`project key listProjects: ${JSON.stringify(data.projects.map((p) => p.id))}`);
({ data } = await personal.listOrgApiKeys(env.ORG_ID));
if (!data.some((k) => k.id === keyId && k.project_id === projectId)) fail(`listOrgApiKeys: ${JSON.stringify(data)}`);
if ((await status(scoped.createProject({ project: {} }))) !== 403) fail("project key createProject is not 403");
if ((await status(scoped.deleteProject(projectId))) !== 403) fail("project key deleteProject is not 403");
ok("project-scoped key: createOrgApiKey, listOrgApiKeys, getAuthDetails, getCurrentUserOrganizations, listProjects (its project), createProject/deleteProject 403");
await personal.revokeOrgApiKey(env.ORG_ID, keyId);
if ((await status(scoped.listProjects({})) ) !== 401) fail("a revoked key still works");
ok("revokeOrgApiKey (the key stops working)");
await org.deleteProject(projectId);
ok("deleteProject");
