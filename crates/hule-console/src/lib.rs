/*!
The operator console `hule console` serves: one place to see what is failing and why, and to repair it safely.

- **Overview** (`/`): dead letters by reason in the last hour, day and in all, the largest failure groups, what the
  replay ledger holds.
- **Dead letters** (`/dead-letters`): grouped by failure fingerprint ([`hule_consumer::Fingerprint`]); a group's
  records paged, each shown whole (`/dead-letters/record/{topic}/{partition}/{offset}`; undecodable bytes as such).
  Operators replay a group with a dry run first, a rate limit, live progress and a cancel (`/replays/{id}`), through
  the replay ledger ([`hule_kafka::replay`]), so a double click, a second operator or a restart never sends a dead
  letter twice, and the group's records of each key go out in their original order.
- **Audit** (`/audit`): every login, refusal and action: who, when, what, how many records, the result.

No page without a login: local users with argon2 hashes, two roles (viewers read and see no record payload; operators
act; roles read from the configuration on every request), sessions in signed cookies (HttpOnly, SameSite=Strict), a
CSRF token in every form and a POST from another site's `Origin` refused, failed logins limited per name. The pages are rendered on the server and work with JavaScript off.
*/
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod data;
pub mod db;
mod flow;
pub mod index;
pub mod jobs;
pub mod oidc;
pub mod pages;
pub mod services;
pub mod store;
pub mod tls;
mod web;

pub use config::{ConsoleFile, Role, User, DEFAULT_LISTEN};
pub use web::{router, serve, serve_on, ConsoleConfig, ConsoleError};
