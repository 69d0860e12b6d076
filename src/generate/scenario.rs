//! Sessions and the state machine that decides what each one emits next:
//! its assignment (created, updated, or late), exposure, page views, click,
//! conversion, and maybe the deletion of its assignment.

use super::kinds::{AssignKind, EventType, Pre, Session, Stage};
use super::rng::mix64;
use super::state::Gen;

impl Gen<'_> {
    fn user_unassigned(&self, user: u32) -> bool {
        let p = self.o.unassigned_users;
        p > 0.0
            && (mix64(self.o.seed ^ 0x756e_6173 ^ (user as u64).wrapping_mul(0x9e37_79b9)) >> 11)
                as f64
                * (1.0 / (1u64 << 53) as f64)
                < p
    }

    fn hash_variant(&self, exp: u32, user: u32) -> u8 {
        (mix64(self.o.seed ^ ((exp as u64) << 32 | user as u64)) % self.o.variants as u64) as u8
    }

    pub(super) fn new_session(&mut self) -> Session {
        let pairs = self.pair_state.len();
        let mut pair = self.rng.below(pairs as u64) as usize;
        // one session per (experiment, user) at a time
        while self.pair_state[pair] & 0x80 != 0 {
            pair += 1;
            if pair == pairs {
                pair = 0;
            }
        }
        self.pair_state[pair] |= 0x80;
        let exp = (pair % self.o.experiments as usize) as u32 + 1;
        let user = (pair / self.o.experiments as usize) as u32;
        let assigned_user = !self.user_unassigned(user);
        let cur = self.pair_state[pair] & 0x7f;
        let (pre, variant) = if !assigned_user {
            (Pre::None, self.hash_variant(exp, user))
        } else if cur == 0 {
            let v = if self.pair_assign_id[pair] != 0 {
                // assigned anew after a delete
                self.rng.below(self.o.variants as u64) as u8
            } else {
                self.hash_variant(exp, user)
            };
            if self.rng.chance(self.o.before_assignment) {
                (Pre::CreateAfterFirst, v)
            } else {
                (Pre::Create, v)
            }
        } else if self.rng.chance(self.o.reassignments) {
            let v = cur - 1;
            let nv = if self.o.variants > 1 {
                ((v as u64 + 1 + self.rng.below(self.o.variants as u64 - 1))
                    % self.o.variants as u64) as u8
            } else {
                v
            };
            (Pre::Update, nv)
        } else {
            (Pre::None, cur - 1)
        };
        let mut page_views = 1;
        if self.o.mean_page_views > 1.0 {
            let q = 1.0 - 1.0 / self.o.mean_page_views;
            while page_views < 50 && self.rng.f64() < q {
                page_views += 1;
            }
        } else if self.o.mean_page_views <= 0.0 {
            page_views = 0;
        }
        let rates = &self.o.conversion_rates;
        let rate = *rates
            .get(variant as usize)
            .unwrap_or(&rates[rates.len() - 1]);
        let click = self.rng.chance(self.o.click_rate);
        let convert = self.rng.chance(rate);
        let delete = assigned_user && self.rng.chance(self.o.deletes);
        let claim = assigned_user || self.rng.below(4) != 0;
        let no = self.next_session_no;
        self.next_session_no += 1;
        Session {
            user,
            exp,
            pair,
            variant,
            claim,
            assigned_user,
            pre,
            stage: Stage::Pre,
            page_views,
            click,
            convert,
            delete,
            floor: self.pair_assigned_at[pair],
            no,
            first_ts: 0,
        }
    }

    /// Emit the next record of a random active session.
    pub(super) fn domain_step(&mut self) -> anyhow::Result<()> {
        let i = match self.sticky.take() {
            Some(i) => i,
            None => self.rng.below(self.sessions.len() as u64) as usize,
        };
        let mut s = self.sessions[i];
        loop {
            match s.stage {
                Stage::Pre => {
                    s.stage = Stage::Exposure;
                    match s.pre {
                        Pre::Create => {
                            self.assignment(&mut s, AssignKind::Created, self.clock)?;
                            break;
                        }
                        Pre::Update => {
                            self.assignment(&mut s, AssignKind::Updated, self.clock)?;
                            break;
                        }
                        _ => {}
                    }
                }
                Stage::Exposure => {
                    s.stage = if s.pre == Pre::CreateAfterFirst {
                        self.sticky = Some(i);
                        Stage::LateCreate
                    } else {
                        Stage::PageViews
                    };
                    self.event(&mut s, EventType::Exposure)?;
                    break;
                }
                Stage::LateCreate => {
                    s.stage = Stage::PageViews;
                    // strictly later than the exposure it follows
                    let at = self.clock.max(s.first_ts + 1_000);
                    self.assignment(&mut s, AssignKind::Created, at)?;
                    break;
                }
                Stage::PageViews => {
                    if s.page_views > 0 {
                        s.page_views -= 1;
                        self.event(&mut s, EventType::PageView)?;
                        break;
                    }
                    s.stage = Stage::Click;
                }
                Stage::Click => {
                    s.stage = Stage::Conversion;
                    if s.click {
                        self.event(&mut s, EventType::Click)?;
                        break;
                    }
                }
                Stage::Conversion => {
                    s.stage = Stage::Delete;
                    if s.convert {
                        self.event(&mut s, EventType::Conversion)?;
                        break;
                    }
                }
                Stage::Delete => {
                    s.stage = Stage::Done;
                    if s.delete {
                        let at = self.pair_assigned_at[s.pair];
                        self.assignment(&mut s, AssignKind::Deleted, at)?;
                        break;
                    }
                }
                Stage::Done => unreachable!("a finished session is replaced at once"),
            }
        }
        // A session with nothing left is replaced now.
        let done = match s.stage {
            Stage::Done => true,
            Stage::PageViews => s.page_views == 0 && !s.click && !s.convert && !s.delete,
            Stage::Click => !s.click && !s.convert && !s.delete,
            Stage::Conversion => !s.convert && !s.delete,
            Stage::Delete => !s.delete,
            _ => false,
        };
        if done {
            self.pair_state[s.pair] &= 0x7f;
            s = self.new_session();
        }
        self.sessions[i] = s;
        Ok(())
    }
}
