// Package apikey provides the API keys of named staff: keys created for a
// person ("team/person") with a role and an expiry, listed without their
// secret, revoked at once, and checked on every request.
//
// It keeps three rules. Only a key's SHA-256 is stored, and its secret is
// shown once, to its creator (CM-5). A key is checked against the store on
// every request, so a revocation committed by any node refuses the very
// next request on every node (as invariant 5 asks of withdrawals): each
// request reads the store's governance generation, which a revocation
// moves in its own transaction, and a node reads a key's row again only
// when the generation moved since it last verified that key; nothing is
// kept of unknown or revoked keys, and expiry is checked every time. And
// every creation and revocation is an audit record in the same
// transaction, holding the name and role but no key material
// (invariant 3).
//
// Names matter for separation of duties (RO-7): package review compares
// the team with the owners the catalog declares and the person with the
// appellant, so a key must name a real person. Roles are strings: a
// company may create the roles in CompanyRoles; the regulator role is not
// among them, because a company must not lift its regulator's orders
// (RO-6). A regulator node makes a Service with its own roles.
//
// Last use is recorded at most once a minute per key and node, so that
// authenticating adds no write to the ordinary request.
package apikey
