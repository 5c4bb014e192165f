//! The fraud guard's arithmetic, pure: what one destination remembers ([`Dest`]), what one sent
//! code remembers ([`Att`]), and the three transactions over them (a send, its release, a
//! conversion). Both backends run exactly these functions on the records they hold, so the
//! memory and Redis guards decide alike. No I/O, no clock: `now` is an argument.

use serde::{Deserialize, Serialize};

/// The three granularities a number belongs to, coarsest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// The region (`US`).
    Country,
    /// The long prefix without its last 3 digits (`1415`: +1 and the area code).
    Short,
    /// The first `VERIFYD_FRAUD_GUARD_PREFIX_DIGITS` digits (`1415555`: +1 NPA-NXX).
    Long,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Country, Level::Short, Level::Long];

    /// A fixed label for metrics, logs and status.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Country => "country",
            Level::Short => "short_prefix",
            Level::Long => "long_prefix",
        }
    }

    /// The storage tag of the level's keys.
    pub const fn tag(self) -> &'static str {
        match self {
            Level::Country => "c",
            Level::Short => "s",
            Level::Long => "l",
        }
    }
}

/// Why the guard refuses (or, in monitor mode, would refuse) a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The long prefix is blocked: it converted too little.
    Blocked,
    /// The short prefix (or country) is closed to its destinations that have not converted in
    /// the window: the codes sent to such destinations in it converted too little.
    Closed,
    /// The destination has not converted in the window and already has its allowance of
    /// unsettled codes.
    Unproven,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Blocked => "blocked",
            Reason::Closed => "closed",
            Reason::Unproven => "unproven",
        }
    }
}

/// The rules, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub window_ms: i64,
    pub settle_ms: i64,
    pub block_ms: i64,
    pub min_sends: u32,
    pub min_conversion: f64,
    pub unproven_max: u32,
}

impl Rules {
    /// Sends are grouped by send time into slots this wide (≥ 1 s, about 30 per settle time),
    /// so a busy destination's record stays small; a slot settles once its last instant has.
    pub fn slot_ms(&self) -> i64 {
        (self.settle_ms / 30).max(1000)
    }

    fn slot_of(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.slot_ms())
    }
}

/// Settled attempts and conversions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Settled: converted, or unanswered for the settle time.
    pub s: u32,
    /// Converted (approved), early or late.
    pub c: u32,
}

/// Unsettled attempts sent in one slot.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// The slot's start, ms since the epoch.
    pub t: i64,
    /// Attempts.
    pub n: u32,
    /// Of which sent to a child destination that had not converted (parents only).
    pub p: u32,
}

/// What the guard knows of one destination (a country, a short or a long prefix).
///
/// The rolling window is two fixed halves' worth of counts (`prev`, `cur`, each one window
/// long), with `prev` weighted by how much of it still lies inside the window: the usual
/// sliding-window estimate, two numbers per figure instead of one per event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dest {
    /// Start of `cur`, ms.
    #[serde(default)]
    pub w: i64,
    /// Every attempt to this destination.
    #[serde(default)]
    pub cur: Counts,
    #[serde(default)]
    pub prev: Counts,
    /// Attempts to its children that had not converted (parents only): what closes it.
    #[serde(default)]
    pub pcur: Counts,
    #[serde(default)]
    pub pprev: Counts,
    /// Unsettled attempts by send slot, oldest first.
    #[serde(default)]
    pub pending: Vec<Slot>,
    /// Last conversion, ms (0: none remembered).
    #[serde(default)]
    pub last: i64,
    /// Blocked (long prefix) or closed (parents) until, ms (0: never).
    #[serde(default)]
    pub until: i64,
}

/// One sent code not yet converted, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Att {
    /// Sent at, ms.
    pub t: i64,
    /// Whether it was sent to a short prefix that had not converted (counts on the country's
    /// probe figures) and to a long prefix that had not (counts on the short prefix's).
    pub p: [bool; 2],
}

/// Figures over the window, for decisions and status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub settled: f64,
    pub converted: f64,
}

impl Figures {
    /// Converted / settled, at most 1; `None` before anything settled.
    pub fn conversion(&self) -> Option<f64> {
        (self.settled > 0.0).then(|| (self.converted / self.settled).min(1.0))
    }

    fn too_low(&self, rules: &Rules) -> bool {
        self.settled + 1e-9 >= f64::from(rules.min_sends)
            && self.conversion().is_some_and(|c| c < rules.min_conversion)
    }
}

impl Dest {
    /// Moves the window to `now` and settles every slot whose settle time has passed.
    pub fn advance(&mut self, now: i64, rules: &Rules) {
        let w = rules.window_ms;
        if self.w == 0 {
            self.w = now - now.rem_euclid(w);
        } else if now >= self.w + 2 * w {
            self.prev = Counts::default();
            self.pprev = Counts::default();
            self.cur = Counts::default();
            self.pcur = Counts::default();
            self.w = now - now.rem_euclid(w);
        } else if now >= self.w + w {
            self.prev = self.cur;
            self.pprev = self.pcur;
            self.cur = Counts::default();
            self.pcur = Counts::default();
            self.w += w;
        }
        let due = now - rules.settle_ms - rules.slot_ms();
        let mut settled = Counts::default();
        let mut probes = 0;
        self.pending.retain(|slot| {
            if slot.t <= due {
                settled.s += slot.n;
                probes += slot.p;
                false
            } else {
                true
            }
        });
        self.cur.s += settled.s;
        self.pcur.s += probes;
    }

    fn estimate(&self, prev: Counts, cur: Counts, now: i64, rules: &Rules) -> Figures {
        let inside = 1.0 - ((now - self.w) as f64 / rules.window_ms as f64).clamp(0.0, 1.0);
        Figures {
            settled: f64::from(prev.s) * inside + f64::from(cur.s),
            converted: f64::from(prev.c) * inside + f64::from(cur.c),
        }
    }

    /// Every attempt to this destination over the window.
    pub fn figures(&self, now: i64, rules: &Rules) -> Figures {
        self.estimate(self.prev, self.cur, now, rules)
    }

    /// Attempts to its children that had not converted, over the window.
    pub fn probe_figures(&self, now: i64, rules: &Rules) -> Figures {
        self.estimate(self.pprev, self.pcur, now, rules)
    }

    /// Whether it converted within the window.
    pub fn proven(&self, now: i64, rules: &Rules) -> bool {
        self.last > 0 && now - self.last < rules.window_ms
    }

    /// Unsettled attempts.
    pub fn unsettled(&self) -> u32 {
        self.pending.iter().map(|s| s.n).sum()
    }

    /// Unsettled attempts to children that had not converted.
    pub fn unsettled_probes(&self) -> u32 {
        self.pending.iter().map(|s| s.p).sum()
    }

    /// Whether it is blocked (or closed) at `now`.
    pub fn blocked(&self, now: i64) -> bool {
        self.until > now
    }

    /// Blocks it until `now + block`, spending the evidence that led there: once the block
    /// lifts the destination starts over (as unproven, unless it converts).
    pub fn block(&mut self, now: i64, rules: &Rules) {
        self.until = now + rules.block_ms;
        self.cur = Counts::default();
        self.prev = Counts::default();
        self.pcur = Counts::default();
        self.pprev = Counts::default();
    }

    /// Lifts a block (`verifyd guard unblock`), spending the evidence too.
    pub fn unblock(&mut self) {
        self.until = 0;
        self.cur = Counts::default();
        self.prev = Counts::default();
        self.pcur = Counts::default();
        self.pprev = Counts::default();
    }

    fn add(&mut self, slot: i64, probe: bool) {
        let p = u32::from(probe);
        match self.pending.iter_mut().find(|s| s.t == slot) {
            Some(s) => {
                s.n += 1;
                s.p += p;
            }
            None => {
                self.pending.push(Slot { t: slot, n: 1, p });
                self.pending.sort_by_key(|s| s.t);
            }
        }
    }

    /// Takes one attempt of `slot` out of the unsettled ones; whether it was there.
    fn take(&mut self, slot: i64, probe: bool) -> bool {
        let Some(i) = self.pending.iter().position(|s| s.t == slot && s.n > 0) else {
            return false;
        };
        let s = &mut self.pending[i];
        s.n -= 1;
        if probe {
            s.p = s.p.saturating_sub(1);
        }
        if s.n == 0 {
            self.pending.remove(i);
        }
        true
    }

    /// When this record may be forgotten (nothing in it matters any more), ms.
    pub fn expires_at(&self, rules: &Rules) -> i64 {
        let pending = self
            .pending
            .last()
            .map_or(0, |s| s.t + rules.settle_ms + 2 * rules.slot_ms());
        (self.w + 2 * rules.window_ms)
            .max(self.last + rules.window_ms)
            .max(self.until)
            .max(pending)
    }
}

/// A refusal: at which level, why, and until when (for blocks and closures).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refusal {
    pub level: Level,
    pub reason: Reason,
    /// ms; 0 when it lasts until something settles or converts.
    pub until: i64,
}

/// What a send transaction decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendDecision {
    /// Why the guard is against this send (`None`: for it).
    pub refusal: Option<Refusal>,
    /// The send was reserved (counted as unsettled): `Some(sent at)` when it must be given back
    /// should the code not go out.
    pub reserved: Option<i64>,
    /// Blocks and closures this transaction started.
    pub new_blocks: Vec<Level>,
}

/// A send to the destinations `d` (country, short, long) of a number with record `att`:
/// settles what is due, starts any block the figures now call for, then decides. With
/// `refuse`, a refused send changes nothing else; without (monitor), it is reserved as sent.
/// A resend while the number's last code is unsettled is not a new attempt: only blocks apply.
pub fn send(
    d: &mut [Dest; 3],
    att: &mut Option<Att>,
    now: i64,
    rules: &Rules,
    refuse: bool,
) -> SendDecision {
    for dest in d.iter_mut() {
        dest.advance(now, rules);
    }
    let [c, s, l] = d;
    let mut out = SendDecision::default();
    if !l.blocked(now) && l.figures(now, rules).too_low(rules) {
        l.block(now, rules);
        out.new_blocks.push(Level::Long);
    }
    for (level, dest) in [(Level::Short, &mut *s), (Level::Country, &mut *c)] {
        if !dest.blocked(now) && dest.probe_figures(now, rules).too_low(rules) {
            dest.block(now, rules);
            out.new_blocks.push(level);
        }
    }
    let l_proven = l.proven(now, rules);
    let s_proven = s.proven(now, rules);
    let resend = att.is_some_and(|a| {
        let slot = rules.slot_of(a.t);
        l.pending.iter().any(|p| p.t == slot && p.n > 0)
    });
    let refusal = |level, reason, until| {
        Some(Refusal {
            level,
            reason,
            until,
        })
    };
    out.refusal = if l.blocked(now) {
        refusal(Level::Long, Reason::Blocked, l.until)
    } else if !l_proven && s.blocked(now) {
        refusal(Level::Short, Reason::Closed, s.until)
    } else if !s_proven && c.blocked(now) {
        refusal(Level::Country, Reason::Closed, c.until)
    } else if resend {
        None
    } else if !l_proven && l.unsettled() >= rules.unproven_max {
        refusal(Level::Long, Reason::Unproven, 0)
    } else if !l_proven && s.unsettled_probes() >= rules.unproven_max {
        refusal(Level::Short, Reason::Unproven, 0)
    } else if !s_proven && c.unsettled_probes() >= rules.unproven_max {
        refusal(Level::Country, Reason::Unproven, 0)
    } else {
        None
    };
    if (out.refusal.is_some() && refuse) || resend {
        return out;
    }
    let slot = rules.slot_of(now);
    l.add(slot, false);
    s.add(slot, !l_proven);
    c.add(slot, !s_proven);
    *att = Some(Att {
        t: now,
        p: [!s_proven, !l_proven],
    });
    out.reserved = Some(now);
    out
}

/// Gives back the attempt reserved at `sent` (the code did not go out).
pub fn release(d: &mut [Dest; 3], att: &mut Option<Att>, sent: i64, rules: &Rules) {
    let Some(a) = *att else { return };
    if a.t != sent {
        return;
    }
    let slot = rules.slot_of(a.t);
    let [c, s, l] = d;
    l.take(slot, false);
    s.take(slot, a.p[1]);
    c.take(slot, a.p[0]);
    *att = None;
}

/// The number's last code was approved at `now`: a conversion at every level (settled now if
/// it was still unsettled, else a late conversion of an attempt already counted). Whether
/// there was a guarded attempt to convert.
pub fn convert(d: &mut [Dest; 3], att: &mut Option<Att>, now: i64, rules: &Rules) -> bool {
    let Some(a) = att.take() else { return false };
    let slot = rules.slot_of(a.t);
    for (i, dest) in d.iter_mut().enumerate() {
        dest.advance(now, rules);
        let probe = match i {
            0 => a.p[0],
            1 => a.p[1],
            _ => false,
        };
        if dest.take(slot, probe) {
            dest.cur.s += 1;
            dest.pcur.s += u32::from(probe);
        }
        dest.cur.c += 1;
        dest.pcur.c += u32::from(probe);
        dest.last = now;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 100 * 24 * 60 * MIN;

    fn rules() -> Rules {
        Rules {
            window_ms: 24 * 60 * MIN,
            settle_ms: 3 * MIN,
            block_ms: 60 * MIN,
            min_sends: 6,
            min_conversion: 0.2,
            unproven_max: 2,
        }
    }

    #[test]
    fn an_unproven_prefix_gets_a_few_unsettled_codes_then_more_as_they_settle() {
        let r = rules();
        let mut d: [Dest; 3] = Default::default();
        let t0 = T0;
        let mut atts = [None, None, None];
        assert_eq!(send(&mut d, &mut atts[0], t0, &r, true).refusal, None);
        assert_eq!(send(&mut d, &mut atts[1], t0, &r, true).refusal, None);
        let third = send(&mut d, &mut atts[2], t0, &r, true);
        assert_eq!(third.refusal.map(|r| r.reason), Some(Reason::Unproven));
        assert_eq!(third.reserved, None, "a refusal reserves nothing");
        // Once the first two settle unanswered, two more may go.
        let later = t0 + r.settle_ms + 2 * r.slot_ms();
        assert_eq!(send(&mut d, &mut atts[2], later, &r, true).refusal, None);
        assert_eq!(d[2].figures(later, &r).settled, 2.0);
    }

    #[test]
    fn a_conversion_proves_the_prefix_and_lifts_the_cap() {
        let r = rules();
        let mut d: [Dest; 3] = Default::default();
        let t0 = T0;
        let mut a = None;
        send(&mut d, &mut a, t0, &r, true);
        assert!(convert(&mut d, &mut a, t0 + MIN, &r));
        assert!(d[2].proven(t0 + MIN, &r));
        for i in 0..10 {
            let mut fresh = None;
            assert_eq!(
                send(&mut d, &mut fresh, t0 + MIN + i, &r, true).refusal,
                None,
                "send {i}"
            );
        }
    }

    #[test]
    fn a_prefix_that_never_converts_is_blocked_then_starts_over() {
        let r = rules();
        let mut d: [Dest; 3] = Default::default();
        // The parents have converted (other exchanges), this long prefix never does.
        d[0].last = 1;
        d[1].last = 1;
        let mut t = T0;
        d[0].last = t;
        d[1].last = t;
        let mut sent = 0;
        let mut blocked_at = None;
        for _ in 0..40 {
            let mut a = None;
            let out = send(&mut d, &mut a, t, &r, true);
            if out.new_blocks.contains(&Level::Long) {
                blocked_at = Some(t);
            }
            if out.refusal.is_none() {
                sent += 1;
            }
            t += MIN;
        }
        let blocked_at = blocked_at.expect("blocked");
        assert!((6..=12).contains(&sent), "{sent} sent before the block");
        assert!(d[2].blocked(t));
        // After the block, the prefix is unproven again: its allowance, no more.
        let after = blocked_at + r.block_ms;
        let mut a = None;
        assert_eq!(send(&mut d, &mut a, after, &r, true).refusal, None);
    }

    #[test]
    fn a_short_prefix_closes_to_unproven_exchanges_only() {
        let r = rules();
        let mut d_proven: [Dest; 3] = Default::default();
        let t0 = T0;
        // A proven exchange in the area code.
        let mut a = None;
        send(&mut d_proven, &mut a, t0, &r, true);
        convert(&mut d_proven, &mut a, t0 + 1000, &r);
        let (country, area, good) = (
            d_proven[0].clone(),
            d_proven[1].clone(),
            d_proven[2].clone(),
        );
        let mut area = area;
        let mut country = country;
        // Many unproven exchanges in it, never converting.
        let mut t = t0 + 2000;
        for round in 0..6 {
            for ex in 0..20 {
                let mut d = [country.clone(), area.clone(), Dest::default()];
                let mut a = None;
                let _ = (round, ex);
                send(&mut d, &mut a, t, &r, true);
                [country, area] = [d[0].clone(), d[1].clone()];
            }
            t += r.settle_ms + 2 * r.slot_ms();
        }
        assert!(area.blocked(t), "the area code closed");
        let mut d = [country.clone(), area.clone(), Dest::default()];
        let refused = send(&mut d, &mut None, t, &r, true)
            .refusal
            .expect("refused");
        assert_eq!(
            (refused.level, refused.reason),
            (Level::Short, Reason::Closed)
        );
        let mut d = [country, area, good];
        assert_eq!(send(&mut d, &mut None, t, &r, true).refusal, None);
    }

    #[test]
    fn monitor_reserves_what_it_would_refuse() {
        let r = rules();
        let mut d: [Dest; 3] = Default::default();
        let t0 = T0;
        for _ in 0..2 {
            send(&mut d, &mut None, t0, &r, false);
        }
        let out = send(&mut d, &mut None, t0, &r, false);
        assert_eq!(out.refusal.map(|r| r.reason), Some(Reason::Unproven));
        assert!(out.reserved.is_some());
        assert_eq!(d[2].unsettled(), 3);
    }

    #[test]
    fn a_release_gives_the_reservation_back() {
        let r = rules();
        let mut d: [Dest; 3] = Default::default();
        let mut a = None;
        let t0 = T0;
        let sent = send(&mut d, &mut a, t0, &r, true).reserved.unwrap();
        release(&mut d, &mut a, sent, &r);
        assert_eq!(a, None);
        assert!(d.iter().all(|x| x.unsettled() == 0));
    }

    #[test]
    fn a_late_approval_still_counts_as_a_conversion() {
        let r = rules();
        let mut d: [Dest; 3] = Default::default();
        let mut a = None;
        let t0 = T0;
        send(&mut d, &mut a, t0, &r, true);
        let late = t0 + 8 * MIN;
        d[2].advance(late, &r);
        assert_eq!(d[2].figures(late, &r).converted, 0.0);
        assert!(convert(&mut d, &mut a, late, &r));
        let f = d[2].figures(late, &r);
        assert_eq!((f.settled, f.converted), (1.0, 1.0));
    }

    #[test]
    fn the_window_forgets() {
        let r = rules();
        let mut d = Dest::default();
        let t0 = T0;
        d.advance(t0, &r);
        d.cur = Counts { s: 10, c: 0 };
        d.advance(t0 + r.window_ms + 1, &r);
        let half = d.figures(t0 + r.window_ms + r.window_ms / 2, &r);
        assert!(half.settled > 0.0 && half.settled < 10.0, "{half:?}");
        d.advance(t0 + 3 * r.window_ms, &r);
        assert_eq!(d.figures(t0 + 3 * r.window_ms, &r).settled, 0.0);
    }
}
