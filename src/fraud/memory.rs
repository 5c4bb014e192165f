//! The fraud guard's state in this process's memory (one node). One mutex over one map, held
//! for a transaction's few lookups and its arithmetic, never across an await. Bounded like the
//! in-memory limiter: at the cap, records past their use are dropped; if none is, the
//! transaction is refused (fail closed: 503).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::state::{Att, Dest, Rules};
use super::{GuardBackend, GuardError, Txn};

enum Entry {
    Dest(Dest, i64),
    Att(Att, i64),
}

impl Entry {
    fn expires(&self) -> i64 {
        match self {
            Entry::Dest(_, e) | Entry::Att(_, e) => *e,
        }
    }
}

/// Guard records in memory.
pub struct MemoryGuard {
    map: Mutex<HashMap<String, Entry>>,
    cap: usize,
}

impl MemoryGuard {
    /// A store of at most `cap` records (destinations and unsettled codes).
    pub fn new(cap: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            cap: cap.max(16),
        }
    }
}

#[async_trait]
impl GuardBackend for MemoryGuard {
    async fn update(
        &self,
        dests: &[String],
        att: Option<&str>,
        rules: &Rules,
        now: i64,
        f: Txn<'_>,
    ) -> Result<(), GuardError> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| GuardError::new("fraud guard lock poisoned"))?;
        let mut records: Vec<Dest> = dests
            .iter()
            .map(|k| match map.get(k) {
                Some(Entry::Dest(d, e)) if *e > now => d.clone(),
                _ => Dest::default(),
            })
            .collect();
        let mut a = att.and_then(|k| match map.get(k) {
            Some(Entry::Att(a, e)) if *e > now => Some(*a),
            _ => None,
        });
        f(&mut records, &mut a);
        let incoming = dests.iter().filter(|k| !map.contains_key(*k)).count()
            + usize::from(att.is_some_and(|k| a.is_some() && !map.contains_key(k)));
        if map.len() + incoming > self.cap {
            map.retain(|_, e| e.expires() > now);
            if map.len() + incoming > self.cap {
                metrics::counter!("verifyd_fraud_guard_full_total").increment(1);
                return Err(GuardError::new(
                    "the in-memory fraud guard is full of records in use; refusing new \
                     destinations (raise VERIFYD_LIMITER_MAX_KEYS)",
                ));
            }
        }
        for (k, d) in dests.iter().zip(records) {
            let expires = d.expires_at(rules);
            map.insert(k.clone(), Entry::Dest(d, expires));
        }
        if let Some(k) = att {
            match a {
                Some(a) => {
                    map.insert(k.to_owned(), Entry::Att(a, a.t + rules.window_ms));
                }
                None => {
                    map.remove(k);
                }
            }
        }
        Ok(())
    }

    async fn read(&self, keys: &[String], now: i64) -> Result<Vec<Option<Dest>>, GuardError> {
        let map = self
            .map
            .lock()
            .map_err(|_| GuardError::new("fraud guard lock poisoned"))?;
        Ok(keys
            .iter()
            .map(|k| match map.get(k) {
                Some(Entry::Dest(d, e)) if *e > now => Some(d.clone()),
                _ => None,
            })
            .collect())
    }

    async fn blocked(&self, now: i64) -> Result<Vec<(String, Dest)>, GuardError> {
        let map = self
            .map
            .lock()
            .map_err(|_| GuardError::new("fraud guard lock poisoned"))?;
        let mut out: Vec<(String, Dest)> = map
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Dest(d, _) if d.blocked(now) => Some((k.clone(), d.clone())),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
