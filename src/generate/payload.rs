//! The application's JSON payloads (assignments and events) written inside
//! the outbox row's `payload` string, with Python `json.dumps` spacing.

use super::kinds::{variant_id, AggId, AssignKind, EventType, Malformed, Pre, Session};
use super::rng::mix64;
use super::state::Gen;
use super::text::{push_cents, push_padded, push_u64};
use crate::time::SECOND;

const PAGES: [&str; 8] = [
    "/landing",
    "/pricing",
    "/features",
    "/product/1",
    "/product/2",
    "/product/3",
    "/cart",
    "/checkout",
];
const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];
const BROWSERS: [&str; 4] = ["chrome", "safari", "firefox", "edge"];
const ELEMENTS: [&str; 4] = ["cta", "checkout_button", "nav_link", "add_to_cart"];
const BAD_TIMESTAMPS: [&str; 4] = [
    "2025-13-45T99:00:00+00:00",
    "yesterday",
    "2025-02-30T10:00:00+00:00",
    "",
];
/// Ring of recent event payloads kept for duplicates.
const DUP_RING: usize = 256;

/// Quote of the application's JSON inside the `payload` string (`\"`), and
/// inside a properties string inside it (`\\\"`).
pub(super) const Q1: &[u8] = br#"\""#;
pub(super) const Q2: &[u8] = br#"\\\""#;

impl Gen<'_> {
    #[inline]
    fn push_user(buf: &mut Vec<u8>, width: usize, user: u32) {
        buf.extend_from_slice(b"user_");
        push_padded(buf, user as u64, width);
    }

    /// An assignment outbox row (`assigned_at` given; the clock is `created_at`).
    pub(super) fn assignment(
        &mut self,
        s: &mut Session,
        kind: AssignKind,
        assigned_at: i64,
    ) -> anyhow::Result<()> {
        let id = if kind == AssignKind::Created {
            let id = self.next_assignment_id;
            self.next_assignment_id += 1;
            id
        } else {
            self.pair_assign_id[s.pair]
        };
        let variant = if kind == AssignKind::Deleted {
            (self.pair_state[s.pair] & 0x7f).saturating_sub(1)
        } else {
            s.variant
        };
        let oid = self.after_begin(AggId::Assignment(id), b"assignment", kind.event_type());
        let p = &mut self.after;
        p.extend_from_slice(br#"{\"id\": "#);
        push_u64(p, id as u64);
        p.extend_from_slice(br#", \"experiment_id\": "#);
        push_u64(p, s.exp as u64);
        p.extend_from_slice(br#", \"user_id\": \""#);
        Self::push_user(p, self.user_width, s.user);
        p.extend_from_slice(br#"\", \"variant_id\": "#);
        push_u64(p, variant_id(s.exp, variant as u32) as u64);
        p.extend_from_slice(br#", \"variant_key\": \""#);
        p.extend_from_slice(self.variant_keys[variant as usize].as_bytes());
        p.extend_from_slice(br#"\", \"assigned_at\": \""#);
        self.ts.python(p, assigned_at);
        p.extend_from_slice(br#"\", \"source\": \""#);
        p.extend_from_slice(if kind == AssignKind::Updated {
            b"rebalance"
        } else {
            b"api"
        });
        p.extend_from_slice(br#"\"}"#);
        self.after_end(oid, true)?;
        match kind {
            AssignKind::Created => {
                self.stats.assignments_created += 1;
                self.pair_assign_id[s.pair] = id;
                self.pair_assigned_at[s.pair] = assigned_at;
                self.pair_state[s.pair] = 0x80 | (s.variant + 1);
                s.floor = assigned_at;
            }
            AssignKind::Updated => {
                self.stats.assignments_updated += 1;
                self.pair_assigned_at[s.pair] = assigned_at;
                self.pair_state[s.pair] = 0x80 | (s.variant + 1);
                s.floor = assigned_at;
            }
            AssignKind::Deleted => {
                self.stats.assignments_deleted += 1;
                self.pair_state[s.pair] = 0x80;
                self.pair_assigned_at[s.pair] = 0;
            }
        }
        Ok(())
    }

    /// The properties object, Python spacing, quotes written as `q`.
    fn push_props(&mut self, q: &[u8], s: &Session, et: EventType, value_cents: u64, score: u64) {
        let h = mix64(self.o.seed ^ 0x6465_7669 ^ s.user as u64);
        let device = DEVICES[(h % 3) as usize];
        let browser = BROWSERS[((h >> 8) % 4) as usize];
        let page = match et {
            EventType::Exposure => "/landing",
            EventType::Conversion => "/checkout/complete",
            _ => PAGES[self.rng.below(PAGES.len() as u64) as usize],
        };
        let element = if et == EventType::Click {
            ELEMENTS[self.rng.below(ELEMENTS.len() as u64) as usize]
        } else {
            ""
        };
        let pr = &mut self.props;
        pr.clear();
        pr.push(b'{');
        pr.extend_from_slice(q);
        pr.extend_from_slice(b"page");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b": ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(page.as_bytes());
        pr.extend_from_slice(q);
        if et == EventType::Click {
            pr.extend_from_slice(b", ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b"element");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b": ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(element.as_bytes());
            pr.extend_from_slice(q);
        }
        if et == EventType::Conversion {
            pr.extend_from_slice(b", ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b"value");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b": ");
            push_cents(pr, value_cents);
            pr.extend_from_slice(b", ");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b"score");
            pr.extend_from_slice(q);
            pr.extend_from_slice(b": ");
            push_u64(pr, score);
        }
        pr.extend_from_slice(b", ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b"device");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b": ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(device.as_bytes());
        pr.extend_from_slice(q);
        pr.extend_from_slice(b", ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b"browser");
        pr.extend_from_slice(q);
        pr.extend_from_slice(b": ");
        pr.extend_from_slice(q);
        pr.extend_from_slice(browser.as_bytes());
        pr.extend_from_slice(q);
        pr.push(b'}');
    }

    /// Append an event payload (escaped, as inside the `payload` string) to `self.after`.
    pub(super) fn push_event_payload(
        &mut self,
        s: &Session,
        event_id: u64,
        et: EventType,
        ts: i64,
        bad: Malformed,
    ) {
        let (value_cents, score) = if et == EventType::Conversion {
            (
                self.rng
                    .range(self.o.value_min_cents as u64, self.o.value_max_cents as u64),
                self.rng.range(0, 100),
            )
        } else {
            (0, 0)
        };
        let string_props = self.rng.chance(self.o.string_properties);
        self.push_props(
            if string_props { Q2 } else { Q1 },
            s,
            et,
            value_cents,
            score,
        );
        let bad_ts = if bad == Malformed::BadTimestamp {
            BAD_TIMESTAMPS[self.rng.below(BAD_TIMESTAMPS.len() as u64) as usize]
        } else {
            ""
        };
        let start = self.after.len();
        let p = &mut self.after;
        p.extend_from_slice(br#"{\"id\": \"evt_"#);
        push_u64(p, event_id);
        p.extend_from_slice(br#"\", \"experiment_id\": "#);
        push_u64(p, s.exp as u64);
        if bad != Malformed::MissingUserId {
            p.extend_from_slice(br#", \"user_id\": \""#);
            Self::push_user(p, self.user_width, s.user);
            p.extend_from_slice(Q1);
        }
        if s.claim {
            p.extend_from_slice(br#", \"variant_id\": "#);
            push_u64(p, variant_id(s.exp, s.variant as u32) as u64);
            p.extend_from_slice(br#", \"variant_key\": \""#);
            p.extend_from_slice(self.variant_keys[s.variant as usize].as_bytes());
            p.extend_from_slice(Q1);
        } else {
            p.extend_from_slice(br#", \"variant_id\": null, \"variant_key\": null"#);
        }
        p.extend_from_slice(br#", \"event_type\": \""#);
        p.extend_from_slice(et.name().as_bytes());
        p.extend_from_slice(br#"\", \"timestamp\": \""#);
        if bad == Malformed::BadTimestamp {
            p.extend_from_slice(bad_ts.as_bytes());
        } else {
            self.ts.python(p, ts);
        }
        p.extend_from_slice(br#"\", \"properties\": "#);
        if string_props {
            p.extend_from_slice(Q1);
            p.extend_from_slice(&self.props);
            p.extend_from_slice(Q1);
        } else {
            p.extend_from_slice(&self.props);
        }
        p.extend_from_slice(br#", \"session_id\": \"sess_"#);
        Self::push_user(p, self.user_width, s.user);
        p.push(b'_');
        push_u64(p, s.no);
        p.extend_from_slice(br#"\"}"#);
        if bad == Malformed::PayloadNotJson {
            // torn text: cut in the middle, never inside an escape
            let cut = start + (p.len() - start) / 2;
            p.truncate(cut);
            while p.last() == Some(&b'\\') {
                p.pop();
            }
        }
    }

    pub(super) fn event(&mut self, s: &mut Session, et: EventType) -> anyhow::Result<()> {
        let event_id = self.next_event_id;
        self.next_event_id += 1;
        let late = self.rng.chance(self.o.late_events);
        let ts = if late {
            self.clock
                - self.rng.range(self.o.late_min_secs, self.o.late_max_secs) as i64 * SECOND
                - self.rng.below(SECOND as u64) as i64
        } else {
            let mut ts = self.clock;
            if self.o.jitter_secs > 0.0 {
                ts -= (self.rng.f64() * self.o.jitter_secs * SECOND as f64) as i64;
            }
            if s.pre != Pre::CreateAfterFirst || et != EventType::Exposure {
                ts = ts.max(s.floor);
            }
            ts
        };
        if et == EventType::Exposure {
            s.first_ts = ts;
        }
        let oid = self.after_begin(AggId::Event(event_id), b"event", b"EVENT_CREATED");
        let start = self.after.len();
        self.push_event_payload(s, event_id, et, ts, Malformed::None);
        // keep some payloads for duplicates
        if self.o.duplicates > 0.0 && (self.dups.len() < DUP_RING || event_id.is_multiple_of(4)) {
            let payload = &self.after[start..];
            if self.dups.len() < DUP_RING {
                self.dups.push((event_id, payload.to_vec()));
            } else {
                let slot = &mut self.dups[self.dups_pos];
                slot.0 = event_id;
                slot.1.clear();
                slot.1.extend_from_slice(payload);
                self.dups_pos = (self.dups_pos + 1) % DUP_RING;
            }
        }
        self.after_end(oid, true)?;
        let st = &mut self.stats;
        st.events += 1;
        match et {
            EventType::Exposure => {
                st.exposures += 1;
                st.per_variant[s.variant as usize].exposures += 1;
            }
            EventType::PageView => st.page_views += 1,
            EventType::Click => st.clicks += 1,
            EventType::Conversion => {
                st.conversions += 1;
                st.per_variant[s.variant as usize].conversions += 1;
            }
        }
        if !s.assigned_user {
            st.events_unassigned_user += 1;
        }
        if s.pre == Pre::CreateAfterFirst && et == EventType::Exposure {
            st.events_before_assignment += 1;
        }
        if late {
            st.events_late += 1;
        }
        Ok(())
    }
}
