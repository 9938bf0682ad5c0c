//! Embedded schema migrations, shared by every SQL dialect.
//!
//! Each backend embeds its own numbered SQL files (`migrations/<dialect>/0001_init.sql`, …)
//! with `include_str!`, and records what it applied in `latchkey_schema_migrations(version,
//! applied_at)`. This module holds what does not depend on the dialect: the migration type
//! and the plan (which migrations are pending, and refusing a database that a newer Latchkey
//! already migrated past what this build knows). Each backend runs the plan itself, one
//! transaction per migration, because the SQL to do so differs per database.

use latchkey_core::store::{StoreError, StoreErrorKind};

/// One schema change, applied once per database.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its number; migrations run in increasing order, starting at 1.
    pub(crate) version: i64,
    /// A short name, for the log.
    pub(crate) name: &'static str,
    /// The statements, run in one transaction.
    pub(crate) sql: &'static str,
}

/// The migrations of `all` that are not in `applied`, in order.
///
/// A database that already holds a version this build does not know was migrated by a newer
/// Latchkey; writing to it could corrupt what that version added, so it is refused.
pub(crate) fn plan<'a>(
    all: &'a [Migration],
    applied: &[i64],
) -> Result<Vec<&'a Migration>, StoreError> {
    let newest_known = all.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(unknown) = applied.iter().find(|v| **v > newest_known) {
        return Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "database schema version {unknown} is newer than this build of Latchkey \
                 (which knows up to {newest_known}); upgrade Latchkey"
            ),
        ));
    }
    Ok(all
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Migration; 2] = [
        Migration {
            version: 1,
            name: "init",
            sql: "",
        },
        Migration {
            version: 2,
            name: "more",
            sql: "",
        },
    ];

    #[test]
    fn only_unapplied_migrations_are_planned_in_order() {
        let versions = |applied: &[i64]| -> Vec<i64> {
            plan(&ALL, applied)
                .expect("plan")
                .iter()
                .map(|m| m.version)
                .collect()
        };
        assert_eq!(versions(&[]), vec![1, 2]);
        assert_eq!(versions(&[1]), vec![2]);
        assert!(versions(&[1, 2]).is_empty());
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        assert!(plan(&ALL, &[1, 2, 3]).is_err());
    }
}
