/*!
The operator's tooling on the HuleEdu contracts, apart from the runtime so that services do not link it:

- [`schema`]: a draft-07 JSON Schema per payload, derived from the typed payloads of `hule-contracts`;
  [`evolution`]: the gate that compares them with a committed baseline and names every breaking change by event,
  field and rule.
- The operator's documents: [`catalog`] (Markdown), [`html`] (a self-contained page with search and an SVG
  diagram), [`asyncapi`] (AsyncAPI 3.0).
- [`check`]: the registry's contract rules; [`topics`]: the desired topics by class and the plan against a
  described cluster (`hule topics plan|apply`, carried out by `hule_kafka::admin`).

Pure and synchronous like the contracts: no I/O, no clock.
*/
#![warn(missing_docs)]

pub mod asyncapi;
pub mod catalog;
pub mod check;
pub mod evolution;
pub mod html;
pub mod schema;
pub mod topics;
