//! Entry point of the parser: one [`RawRecord`] → one [`Parsed`] (SPEC 2),
//! by layout ([`super::outbox`], [`super::eventrouter`], [`super::tables`]).

use super::common::ParseContext;
use super::raw::RawRecord;
use crate::config::Layout;
use crate::domain::Parsed;

/// Parses one input record according to `ctx.source.layout`. Never panics.
pub fn parse_record(ctx: &ParseContext, rec: &RawRecord) -> Parsed {
    match ctx.source.layout {
        Layout::Outbox => super::outbox::parse(ctx, rec),
        Layout::Eventrouter => super::eventrouter::parse(ctx, rec),
        Layout::Tables => super::tables::parse(ctx, rec),
    }
}

/// [`parse_record`] with serde_json alone, without the outbox layout's
/// validating scanner: the reference the scanner is checked against (tests,
/// fuzzing, the parse benchmark). Same outcome, slower.
pub fn parse_record_serde(ctx: &ParseContext, rec: &RawRecord) -> Parsed {
    match ctx.source.layout {
        Layout::Outbox => super::outbox::parse_serde(ctx, rec),
        Layout::Eventrouter | Layout::Tables => parse_record(ctx, rec),
    }
}
