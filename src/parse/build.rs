//! The `fields` stage: domain records from a captured payload or table row
//! (SPEC 2.3), shared by every layout.
//!
//! Required fields are checked in a fixed order and the first failure names
//! the dead letter: event `id`, `experiment_id`, `user_id`, `event_type`,
//! `timestamp`; assignment `id`, `experiment_id`, `user_id`, `variant_id`,
//! `assigned_at`. The future check (more than 24 h ahead of the clock) runs
//! after all fields parsed.

use super::common::{stage, Action};
use super::fields::{self, FieldError};
use super::json::{Row, Val};
use crate::domain::Text;
use crate::domain::{
    Assignment, AssignmentDelete, Change, DeadLetter, DeleteById, Event, Micros, Parsed,
};

/// How far ahead of the clock a domain timestamp may be (24 h, inclusive).
pub const MAX_FUTURE_MICROS: Micros = crate::time::DAY;

fn field_dead(e: FieldError, field: &str) -> DeadLetter {
    DeadLetter::new(stage::FIELDS, e.reason(field))
}

fn required<T>(r: Result<T, FieldError>, field: &str) -> Result<T, DeadLetter> {
    r.map_err(|e| field_dead(e, field))
}

fn not_future(ts: Micros, now: Micros, field: &str) -> Result<Micros, DeadLetter> {
    if ts > now.saturating_add(MAX_FUTURE_MICROS) {
        Err(DeadLetter::new(stage::FIELDS, format!("future_{field}")))
    } else {
        Ok(ts)
    }
}

/// Builds an event. `fallback_id` supplies the event id when the payload `id`
/// is absent or null (outbox `aggregate_id`, router record key).
pub fn event_from_row(
    row: &Row,
    fallback_id: impl FnOnce() -> Result<Text, FieldError>,
    now: Micros,
) -> Result<Event, DeadLetter> {
    let event_id: String = match &row.id {
        Val::Absent | Val::Null => required(fallback_id(), "id")?.into(),
        v => required(fields::text_id(v), "id")?.into(),
    };
    let experiment_id = required(fields::u32_id(&row.experiment_id), "experiment_id")?;
    let user_id = required(fields::text_id(&row.user_id), "user_id")?;
    let event_type = required(fields::non_empty_string(&row.event_type), "event_type")?;
    let timestamp = required(fields::timestamp(&row.timestamp), "timestamp")?;
    let timestamp = not_future(timestamp, now, "timestamp")?;
    let p = fields::properties(&row.properties);
    Ok(Event {
        event_id,
        experiment_id,
        user_id,
        event_type,
        timestamp,
        session_id: fields::session_id(&row.session_id),
        claimed_variant_id: fields::opt_u32_id(&row.variant_id),
        page: p.page,
        device: p.device,
        browser: p.browser,
        value: p.value,
        score: p.score,
        properties: p.properties,
    })
}

/// Builds an assignment version (create or update).
pub fn assignment_from_row(row: &Row, now: Micros) -> Result<Assignment, DeadLetter> {
    let id = required(fields::text_id(&row.id), "id")?;
    let experiment_id = required(fields::u32_id(&row.experiment_id), "experiment_id")?;
    let user_id = required(fields::text_id(&row.user_id), "user_id")?;
    let variant_id = required(fields::u32_id(&row.variant_id), "variant_id")?;
    let assigned_at = required(fields::timestamp(&row.assigned_at), "assigned_at")?;
    let assigned_at = not_future(assigned_at, now, "assigned_at")?;
    Ok(Assignment {
        id: id.into(),
        experiment_id,
        user_id: user_id.into(),
        variant_id,
        variant_key: fields::opt_string(&row.variant_key).map(String::from),
        assigned_at,
    })
}

/// Builds an assignment delete: reads only `experiment_id`, `user_id` and
/// `id` (a delete's `before` may hold schema defaults in other columns).
/// When either of the first two is unusable (missing, null or ill-typed) but
/// an `id` is present, the delete is resolved later through the id mapping
/// ([`Parsed::DeleteById`]); without an id the record is dead-lettered for the
/// first unusable field.
pub fn delete_from_row(row: &Row, snapshot: bool, captured: Option<Micros>) -> Parsed {
    let id = fields::text_id(&row.id).ok();
    let exp = fields::u32_id(&row.experiment_id);
    let user = fields::text_id(&row.user_id);
    match (exp, user) {
        (Ok(experiment_id), Ok(user_id)) => Parsed::Change {
            change: Change::Unassign(AssignmentDelete {
                id: id.map(String::from),
                experiment_id,
                user_id: user_id.into(),
            }),
            snapshot,
            captured,
        },
        (exp, user) => match id {
            Some(id) => Parsed::DeleteById(DeleteById {
                id: id.into(),
                captured,
            }),
            None => match (exp, user) {
                (Err(e), _) => Parsed::Dead(field_dead(e, "experiment_id")),
                (_, Err(e)) => Parsed::Dead(field_dead(e, "user_id")),
                // Unreachable: the outer arm matched both Ok.
                _ => Parsed::Dead(DeadLetter::new(stage::FIELDS, "invalid_user_id")),
            },
        },
    }
}

/// When a change was captured: an envelope's `ts_ms` (epoch milliseconds),
/// when it is a usable number.
pub fn captured_at(ts_ms: &Val) -> Option<Micros> {
    match ts_ms {
        Val::U64(ms) => i64::try_from(*ms).ok()?.checked_mul(1000),
        Val::I64(ms) => ms.checked_mul(1000),
        _ => None,
    }
}

/// Runs `action` on a captured payload/row and wraps the outcome as
/// [`Parsed`]; `captured` (see [`captured_at`]) is when it was captured.
pub fn build(
    action: Action,
    row: &Row,
    fallback_id: impl FnOnce() -> Result<Text, FieldError>,
    snapshot: bool,
    captured: Option<Micros>,
    now: Micros,
) -> Parsed {
    let change = match action {
        Action::Upsert => assignment_from_row(row, now).map(Change::Assign),
        Action::Event => event_from_row(row, fallback_id, now).map(Change::Event),
        Action::Delete => return delete_from_row(row, snapshot, captured),
    };
    match change {
        Ok(change) => Parsed::Change {
            change,
            snapshot,
            captured,
        },
        Err(d) => Parsed::Dead(d),
    }
}
