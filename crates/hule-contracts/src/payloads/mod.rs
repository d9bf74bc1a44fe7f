//! Typed payloads of all 71 events, with the field names, order, types, defaults and constraints of the original
//! pydantic models (reference Appendix A).
//!
//! Field order is the wire order: inherited `BaseEventData` fields (`event_name`, `entity_id`, `entity_type`,
//! `parent_id`, `timestamp`) come first, then `ProcessingUpdate`'s `status` and `system_metadata`, then the model's
//! own. Constraints are enforced by the field types of [`crate::constrained`] while decoding. Defaults the original
//! computes from a clock or a random source (`timestamp = now(UTC)`, `correlation_id = uuid4()`) become the epoch
//! and the nil UUID when the field is absent, since this crate has neither; every producer writes them.
//! Fields are documented by their model's documentation in Appendix A of the reference.

#![allow(missing_docs)]

/// Declares a payload deriving from `BaseEventData`: its five fields, then the model's own. `[required]` makes
/// `event_name` required; `["default_fn"]` gives it the model's default.
macro_rules! base_event {
    ($(#[$meta:meta])* $name:ident [required] { $($body:tt)* }) => {
        base_event!(@emit $(#[$meta])* $name [] { $($body)* });
    };
    ($(#[$meta:meta])* $name:ident [$default:literal] { $($body:tt)* }) => {
        base_event!(@emit $(#[$meta])* $name [#[serde(default = $default)]] { $($body)* });
    };
    (@emit $(#[$meta:meta])* $name:ident [$($evattr:tt)*]
        { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub struct $name {
            /// `event_name: ProcessingEvent`, the event's own value by default (Python `BaseEventData.event_name`;
            /// a string is coerced to the enum)
            $($evattr)*
            pub event_name: $crate::registry::Event,
            /// `entity_id: str | None`, default `None` (Python `BaseEventData.entity_id`)
            #[serde(default)]
            pub entity_id: Option<String>,
            /// `entity_type: str | None`, default `None` (Python `BaseEventData.entity_type`)
            #[serde(default)]
            pub entity_type: Option<String>,
            /// `parent_id: str | None`, default `None` (Python `BaseEventData.parent_id`)
            #[serde(default)]
            pub parent_id: Option<String>,
            /// `timestamp: datetime`, default `now(UTC)` (Python `BaseEventData.timestamp`; absent on the wire, the
            /// Unix epoch here)
            #[serde(default)]
            pub timestamp: $crate::time::Timestamp,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
    };
}

/// Declares a payload deriving from `ProcessingUpdate`: `BaseEventData`, `status`, `system_metadata`, then its own.
macro_rules! processing_update {
    ($(#[$meta:meta])* $name:ident [$($ev:tt)*] { $($body:tt)* }) => {
        base_event!($(#[$meta])* $name [$($ev)*] {
            /// `status: EssayStatus | BatchStatus`, required (Python `ProcessingUpdate.status`; `ProcessingStage`
            /// values are refused)
            status: $crate::enums::EntityStatus,
            /// `system_metadata: SystemProcessingMetadata`, required (Python `ProcessingUpdate.system_metadata`)
            system_metadata: $crate::payloads::SystemProcessingMetadata,
            $($body)*
        });
    };
}

mod base;
mod batch;
mod cj;
mod class;
mod defaults;
mod essay;
mod identity;
mod llm;
mod results;

pub use base::*;
pub use batch::*;
pub use cj::*;
pub use class::*;
pub use essay::*;
pub use identity::*;
pub use llm::*;
pub use results::*;
