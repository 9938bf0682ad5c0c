//! Key rotation as a pure plan: from the stored records, the time and the policy, the
//! changes to make. Applying them (generating keys, writing records) is the caller's job, so
//! every node can run the same plan and the store's conditional write picks one winner.
//!
//! The schedule, per algorithm: a next key is created `publish_ahead` before the active key's
//! period ends, so relying parties' cached JWKS know it before it signs; when it activates the
//! old key retires, and stays published until everything it signed has expired
//! (`max_token_lifetime` after its retirement); then its record is deleted.

use super::SigningAlg;
use super::key::{KeyState, SigningKey};
use crate::clock::UnixTime;

/// How keys rotate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// The algorithms to keep a signing key for; the first is the default. An algorithm
    /// dropped from the list has its keys retired.
    pub algs: Vec<SigningAlg>,
    /// How long a key signs before its successor takes over, in seconds.
    pub period: u64,
    /// How long a key is published before it signs, in seconds: longer than any JWKS cache.
    pub publish_ahead: u64,
    /// The longest lifetime of anything a key signs (ID tokens, JWT access tokens, logout
    /// tokens), in seconds: how long a retired key stays published.
    pub max_token_lifetime: u64,
}

impl Default for RotationPolicy {
    /// ES256 only, rotated every 90 days, published a day ahead, kept a day after retiring.
    fn default() -> Self {
        Self {
            algs: vec![SigningAlg::Es256],
            period: 90 * 86_400,
            publish_ahead: 86_400,
            max_token_lifetime: 86_400,
        }
    }
}

/// One change to the stored keys.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyChange {
    /// Generate and store a key for `alg` that signs from `activates_at`.
    Create {
        /// The key's algorithm.
        alg: SigningAlg,
        /// When it starts signing.
        activates_at: UnixTime,
    },
    /// Move a next key's activation to `activates_at` (no other key can sign now).
    Activate {
        /// The key.
        kid: String,
        /// Its new activation time.
        activates_at: UnixTime,
    },
    /// Set when a key stops signing and when it leaves the JWKS.
    Retire {
        /// The key.
        kid: String,
        /// When it stops signing.
        retires_at: UnixTime,
        /// When it leaves the JWKS.
        removes_at: UnixTime,
    },
    /// Delete a key's record: past `removes_at`, or a next key that never signed.
    Delete {
        /// The key.
        kid: String,
    },
}

impl KeyChange {
    /// `record` with this change applied, for changes that update a record (`Activate`,
    /// `Retire`) and name it; `None` otherwise.
    pub fn apply_to(&self, record: &SigningKey) -> Option<SigningKey> {
        match self {
            Self::Activate { kid, activates_at } if *kid == record.kid => Some(SigningKey {
                activates_at: *activates_at,
                ..record.clone()
            }),
            Self::Retire {
                kid,
                retires_at,
                removes_at,
            } if *kid == record.kid => Some(SigningKey {
                retires_at: Some(*retires_at),
                removes_at: Some(*removes_at),
                ..record.clone()
            }),
            _ => None,
        }
    }
}

/// The changes that bring `records` in line with `policy` at `now`. Empty when nothing is due;
/// running it again after applying its changes yields nothing new until time moves.
pub fn plan(records: &[SigningKey], now: UnixTime, policy: &RotationPolicy) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    let retire_now = |key: &SigningKey| KeyChange::Retire {
        kid: key.kid.clone(),
        retires_at: now,
        removes_at: now.plus(policy.max_token_lifetime),
    };
    for key in records {
        match key.state(now) {
            KeyState::Retired => changes.push(KeyChange::Delete {
                kid: key.kid.clone(),
            }),
            // A retirement without a removal time (set by hand, or by an older node) gets one.
            _ if key.retires_at.is_some() && key.removes_at.is_none() => {
                let retires_at = key.retires_at.unwrap_or(now);
                changes.push(KeyChange::Retire {
                    kid: key.kid.clone(),
                    retires_at,
                    removes_at: retires_at.plus(policy.max_token_lifetime),
                });
            }
            // An algorithm no longer configured: its keys stop signing now; one that never
            // signed leaves at once.
            KeyState::Next if !policy.algs.contains(&key.alg) => {
                changes.push(KeyChange::Delete {
                    kid: key.kid.clone(),
                });
            }
            KeyState::Active if !policy.algs.contains(&key.alg) && key.retires_at.is_none() => {
                changes.push(retire_now(key));
            }
            _ => {}
        }
    }
    for alg in &policy.algs {
        plan_alg(records, *alg, now, policy, &mut changes);
    }
    changes
}

/// The active keys of `alg` at `now`, latest activation first, and its next keys, earliest
/// activation first.
fn keys_of(
    records: &[SigningKey],
    alg: SigningAlg,
    now: UnixTime,
) -> (Vec<&SigningKey>, Vec<&SigningKey>) {
    let mut active: Vec<&SigningKey> = records
        .iter()
        .filter(|k| k.alg == alg && k.state(now) == KeyState::Active)
        .collect();
    active.sort_by_key(|k| std::cmp::Reverse(k.activates_at));
    let mut next: Vec<&SigningKey> = records
        .iter()
        .filter(|k| k.alg == alg && k.state(now) == KeyState::Next)
        .collect();
    next.sort_by_key(|k| k.activates_at);
    (active, next)
}

fn plan_alg(
    records: &[SigningKey],
    alg: SigningAlg,
    now: UnixTime,
    policy: &RotationPolicy,
    changes: &mut Vec<KeyChange>,
) {
    let (active, next) = keys_of(records, alg, now);
    // Only one key signs: any older active key (after an immediate rotation, or a race)
    // retires now.
    for older in active.iter().skip(1) {
        if older.retires_at.is_none_or(|t| t > now) {
            changes.push(KeyChange::Retire {
                kid: older.kid.clone(),
                retires_at: now,
                removes_at: now.plus(policy.max_token_lifetime),
            });
        }
    }
    // Only one key waits: later next keys never signed and go.
    for extra in next.iter().skip(1) {
        changes.push(KeyChange::Delete {
            kid: extra.kid.clone(),
        });
    }
    match (active.first(), next.first()) {
        // First start, or every key retired by hand: a key that signs now.
        (None, None) => changes.push(KeyChange::Create {
            alg,
            activates_at: now,
        }),
        // Nothing signs but a successor waits: it takes over now.
        (None, Some(next)) => changes.push(KeyChange::Activate {
            kid: next.kid.clone(),
            activates_at: now,
        }),
        (Some(current), None) => {
            // A retirement already scheduled is kept; otherwise the period decides.
            let (deadline, fixed) = match current.retires_at {
                Some(t) => (t, true),
                None => (current.activates_at.plus(policy.period), false),
            };
            if now.plus(policy.publish_ahead) >= deadline {
                // Published at least `publish_ahead` before it signs, unless a fixed
                // retirement leaves less time (a successor must be there when it comes).
                let activates_at = if fixed {
                    deadline
                } else {
                    deadline.max(now.plus(policy.publish_ahead))
                };
                changes.push(KeyChange::Create { alg, activates_at });
                // The current key retires when its successor activates.
                if !fixed {
                    changes.push(KeyChange::Retire {
                        kid: current.kid.clone(),
                        retires_at: activates_at,
                        removes_at: activates_at.plus(policy.max_token_lifetime),
                    });
                }
            }
        }
        (Some(current), Some(next)) => {
            // A successor scheduled by hand (or by an older node): the current key retires
            // when it activates.
            if current.retires_at.is_none() {
                changes.push(KeyChange::Retire {
                    kid: current.kid.clone(),
                    retires_at: next.activates_at,
                    removes_at: next.activates_at.plus(policy.max_token_lifetime),
                });
            }
        }
    }
}

/// An operator's rotation of `alg`: a successor published now that signs after
/// `publish_ahead`, or at once when `immediate` (the old key then retires now, and stays
/// published until what it signed expires). Nothing when a successor already waits and the
/// rotation is not immediate.
pub fn rotate(
    records: &[SigningKey],
    alg: SigningAlg,
    now: UnixTime,
    policy: &RotationPolicy,
    immediate: bool,
) -> Vec<KeyChange> {
    let (active, next) = keys_of(records, alg, now);
    if immediate {
        let mut changes: Vec<KeyChange> = next
            .iter()
            .map(|k| KeyChange::Delete { kid: k.kid.clone() })
            .collect();
        changes.extend(active.iter().map(|k| KeyChange::Retire {
            kid: k.kid.clone(),
            retires_at: now,
            removes_at: now.plus(policy.max_token_lifetime),
        }));
        changes.push(KeyChange::Create {
            alg,
            activates_at: now,
        });
        return changes;
    }
    if next.is_empty() {
        vec![KeyChange::Create {
            alg,
            activates_at: now.plus(policy.publish_ahead),
        }]
    } else {
        Vec::new()
    }
}

/// An operator's retirement of key `kid`: it stops signing now and stays published until what
/// it signed expires; the next [`plan`] activates or creates a successor. `None` when no
/// such key is still signing or waiting.
pub fn retire(
    records: &[SigningKey],
    kid: &str,
    now: UnixTime,
    policy: &RotationPolicy,
) -> Option<KeyChange> {
    let key = records.iter().find(|k| k.kid == kid)?;
    matches!(key.state(now), KeyState::Next | KeyState::Active).then(|| KeyChange::Retire {
        kid: key.kid.clone(),
        retires_at: now,
        removes_at: now.plus(policy.max_token_lifetime),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: u64 = 86_400;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            algs: vec![SigningAlg::Es256],
            period: 90 * DAY,
            publish_ahead: DAY,
            max_token_lifetime: 3600,
        }
    }

    /// A record with the given times (the key material does not matter to the plan).
    fn key(kid: &str, alg: SigningAlg, activates: i64) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            alg,
            public_jwk: json!({}),
            sealed_private: Vec::new(),
            created_at: UnixTime(0),
            activates_at: UnixTime(activates),
            retires_at: None,
            removes_at: None,
        }
    }

    fn apply(records: &mut Vec<SigningKey>, changes: &[KeyChange]) {
        for (n, change) in changes.iter().enumerate() {
            match change {
                KeyChange::Create { alg, activates_at } => {
                    records.push(key(
                        &format!("new-{}-{n}", activates_at.0),
                        *alg,
                        activates_at.0,
                    ));
                }
                KeyChange::Delete { kid } => records.retain(|k| k.kid != *kid),
                other => {
                    for record in records.iter_mut() {
                        if let Some(updated) = other.apply_to(record) {
                            *record = updated;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn first_start_creates_a_key_that_signs_now() {
        let now = UnixTime(1000);
        assert_eq!(
            plan(&[], now, &policy()),
            [KeyChange::Create {
                alg: SigningAlg::Es256,
                activates_at: now
            }]
        );
    }

    #[test]
    fn nothing_is_due_mid_period() {
        let records = [key("a", SigningAlg::Es256, 0)];
        assert!(plan(&records, UnixTime(10 * DAY as i64), &policy()).is_empty());
    }

    #[test]
    fn a_successor_is_published_ahead_of_the_period_end() {
        let records = [key("a", SigningAlg::Es256, 0)];
        let end = UnixTime(90 * DAY as i64);
        assert!(plan(&records, UnixTime(end.0 - DAY as i64 - 1), &policy()).is_empty());
        assert_eq!(
            plan(&records, UnixTime(end.0 - DAY as i64), &policy()),
            [
                KeyChange::Create {
                    alg: SigningAlg::Es256,
                    activates_at: end
                },
                KeyChange::Retire {
                    kid: "a".into(),
                    retires_at: end,
                    removes_at: end.plus(3600)
                }
            ]
        );
        // Late (the servers were down): still published a full `publish_ahead` first.
        let late = UnixTime(end.0 + 500);
        assert_eq!(
            plan(&records, late, &policy())[0],
            KeyChange::Create {
                alg: SigningAlg::Es256,
                activates_at: late.plus(DAY)
            }
        );
    }

    #[test]
    fn a_successor_scheduled_by_hand_retires_the_old_key_when_it_activates() {
        let records = [
            key("a", SigningAlg::Es256, 0),
            key("b", SigningAlg::Es256, 500),
        ];
        assert_eq!(
            plan(&records, UnixTime(100), &policy()),
            [KeyChange::Retire {
                kid: "a".into(),
                retires_at: UnixTime(500),
                removes_at: UnixTime(500 + 3600)
            }]
        );
    }

    #[test]
    fn a_key_past_its_removal_is_deleted() {
        let mut old = key("a", SigningAlg::Es256, 0);
        old.retires_at = Some(UnixTime(500));
        old.removes_at = Some(UnixTime(4100));
        let records = [old, key("b", SigningAlg::Es256, 500)];
        assert!(plan(&records, UnixTime(4099), &policy()).is_empty());
        assert_eq!(
            plan(&records, UnixTime(4100), &policy()),
            [KeyChange::Delete { kid: "a".into() }]
        );
    }

    #[test]
    fn a_retirement_without_removal_time_gets_one() {
        let mut a = key("a", SigningAlg::Es256, 0);
        a.retires_at = Some(UnixTime(50));
        let records = [a, key("b", SigningAlg::Es256, 50)];
        assert_eq!(
            plan(&records, UnixTime(100), &policy()),
            [KeyChange::Retire {
                kid: "a".into(),
                retires_at: UnixTime(50),
                removes_at: UnixTime(3650)
            }]
        );
    }

    #[test]
    fn a_waiting_successor_takes_over_when_nothing_signs() {
        let mut a = key("a", SigningAlg::Es256, 0);
        a.retires_at = Some(UnixTime(100));
        a.removes_at = Some(UnixTime(3700));
        let records = [a, key("b", SigningAlg::Es256, 5000)];
        assert_eq!(
            plan(&records, UnixTime(200), &policy()),
            [KeyChange::Activate {
                kid: "b".into(),
                activates_at: UnixTime(200)
            }]
        );
    }

    #[test]
    fn a_dropped_algorithm_retires_its_keys() {
        let records = [
            key("a", SigningAlg::Es256, 0),
            key("r", SigningAlg::Rs256, 0),
            key("r-next", SigningAlg::Rs256, 9000),
        ];
        let now = UnixTime(100);
        assert_eq!(
            plan(&records, now, &policy()),
            [
                KeyChange::Retire {
                    kid: "r".into(),
                    retires_at: now,
                    removes_at: now.plus(3600)
                },
                KeyChange::Delete {
                    kid: "r-next".into()
                },
            ]
        );
    }

    #[test]
    fn a_new_algorithm_gets_a_key() {
        let records = [key("a", SigningAlg::Es256, 0)];
        let mut p = policy();
        p.algs.push(SigningAlg::EdDsa);
        assert_eq!(
            plan(&records, UnixTime(100), &p),
            [KeyChange::Create {
                alg: SigningAlg::EdDsa,
                activates_at: UnixTime(100)
            }]
        );
    }

    #[test]
    fn a_full_cycle_settles_and_always_has_one_signer() {
        let p = policy();
        let mut records = Vec::new();
        let mut now = UnixTime(0);
        let step = 3600;
        for _ in 0..(200 * DAY / step) {
            let changes = plan(&records, now, &p);
            apply(&mut records, &changes);
            assert!(
                plan(&records, now, &p).is_empty(),
                "plan settles at {now:?}"
            );
            let signing = records
                .iter()
                .filter(|k| k.state(now) == KeyState::Active)
                .count();
            assert_eq!(signing, 1, "one signer at {now:?}");
            assert!(records.len() <= 3, "bounded: {records:?}");
            now = now.plus(step);
        }
        assert!(records.iter().any(|k| k.activates_at.0 >= 180 * DAY as i64));
    }

    #[test]
    fn manual_rotation_and_retirement() {
        let p = policy();
        let now = UnixTime(100);
        let records = vec![key("a", SigningAlg::Es256, 0)];
        assert_eq!(
            rotate(&records, SigningAlg::Es256, now, &p, false),
            [KeyChange::Create {
                alg: SigningAlg::Es256,
                activates_at: now.plus(DAY)
            }]
        );
        let mut scheduled = records.clone();
        apply(
            &mut scheduled,
            &rotate(&records, SigningAlg::Es256, now, &p, false),
        );
        assert!(rotate(&scheduled, SigningAlg::Es256, now, &p, false).is_empty());
        let mut immediate = records.clone();
        apply(
            &mut immediate,
            &rotate(&records, SigningAlg::Es256, now, &p, true),
        );
        assert!(plan(&immediate, now, &p).is_empty());
        let a = immediate.iter().find(|k| k.kid == "a").expect("a kept");
        assert_eq!(a.state(now), KeyState::Retiring, "old key stays published");

        assert_eq!(
            retire(&records, "a", now, &p),
            Some(KeyChange::Retire {
                kid: "a".into(),
                retires_at: now,
                removes_at: now.plus(3600)
            })
        );
        assert_eq!(retire(&records, "nope", now, &p), None);
        let mut retired = records.clone();
        apply(
            &mut retired,
            &[retire(&records, "a", now, &p).expect("retire")],
        );
        assert_eq!(
            plan(&retired, now, &p),
            [KeyChange::Create {
                alg: SigningAlg::Es256,
                activates_at: now
            }]
        );
    }
}
