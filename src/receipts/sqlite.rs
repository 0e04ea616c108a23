//! The embedded receipt store: one SQLite file in WAL mode, created on first use. Writers take
//! the database lock (`BEGIN IMMEDIATE`), so each site's chain is extended by one writer at a time.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{split_ids, Method, Receipt, Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts_ms INTEGER NOT NULL,
    site TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    lang TEXT NOT NULL,
    granted TEXT NOT NULL,
    refused TEXT NOT NULL,
    method TEXT NOT NULL,
    gpc INTEGER NOT NULL,
    user_agent TEXT NOT NULL,
    ip TEXT,
    previous_receipt TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    erased INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS receipts_site_seq ON receipts (site, seq);
CREATE INDEX IF NOT EXISTS receipts_ts ON receipts (ts_ms);
";

const COLUMNS: &str = "id, ts_ms, site, policy_version, lang, granted, refused, method, gpc, \
                       user_agent, ip, previous_receipt, prev_hash, hash, erased";

fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Receipt> {
    let method: String = r.get(7)?;
    Ok(Receipt {
        id: r.get(0)?,
        ts_ms: r.get(1)?,
        site: r.get(2)?,
        policy_version: r.get(3)?,
        lang: r.get(4)?,
        granted: split_ids(r.get(5)?),
        refused: split_ids(r.get(6)?),
        // An unknown method can only come from a foreign write; verification then fails on
        // the hash, which is the right signal.
        method: Method::parse(&method).unwrap_or(Method::Save),
        gpc: r.get::<_, i64>(8)? != 0,
        user_agent: r.get(9)?,
        ip: r.get(10)?,
        previous_receipt: r.get(11)?,
        prev_hash: r.get(12)?,
        hash: r.get(13)?,
        erased: r.get::<_, i64>(14)? != 0,
    })
}

/// A SQLite receipt store.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(SqliteStore { conn })
    }

    /// Direct access for tests that tamper with rows.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Store for SqliteStore {
    fn append(&mut self, receipts: &mut [Receipt]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut last: HashMap<String, String> = HashMap::new();
        for r in receipts.iter_mut() {
            let prev = match last.get(&r.site) {
                Some(h) => h.clone(),
                None => tx
                    .query_row(
                        "SELECT hash FROM receipts WHERE site = ?1 ORDER BY seq DESC LIMIT 1",
                        params![r.site],
                        |row| row.get::<_, String>(0),
                    )
                    .optional()
                    .map_err(err)?
                    .unwrap_or_default(),
            };
            r.seal(&prev);
            tx.execute(
                &format!("INSERT INTO receipts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
                params![
                    r.id,
                    r.ts_ms,
                    r.site,
                    r.policy_version,
                    r.lang,
                    r.granted.join(","),
                    r.refused.join(","),
                    r.method.as_str(),
                    i64::from(r.gpc),
                    r.user_agent,
                    r.ip,
                    r.previous_receipt,
                    r.prev_hash,
                    r.hash,
                    i64::from(r.erased),
                ],
            )
            .map_err(err)?;
            last.insert(r.site.clone(), r.hash.clone());
        }
        tx.commit().map_err(err)
    }

    fn get(&mut self, id: &str) -> Result<Option<Receipt>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM receipts WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()
            .map_err(err)
    }

    fn erase(&mut self, id: &str) -> Result<bool, StoreError> {
        let Some(mut r) = self.get(id)? else {
            return Ok(false);
        };
        r.tombstone();
        let n = self
            .conn
            .execute(
                "UPDATE receipts SET lang = '', granted = '', refused = '', user_agent = '', ip = NULL, previous_receipt = NULL, gpc = 0, erased = 1 WHERE id = ?1",
                params![id],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    fn list(
        &mut self,
        site: Option<&str>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        each: &mut dyn FnMut(Receipt) -> bool,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM receipts WHERE (?1 IS NULL OR site = ?1) AND (?2 IS NULL OR ts_ms >= ?2) AND (?3 IS NULL OR ts_ms < ?3) ORDER BY site, seq"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![site, from_ms, to_ms], row)
            .map_err(err)?;
        for r in rows {
            if !each(r.map_err(err)?) {
                break;
            }
        }
        Ok(())
    }

    fn purge(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM receipts WHERE ts_ms < ?1", params![before_ms])
            .map_err(err)?;
        Ok(n as u64)
    }

    fn sites(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT site FROM receipts ORDER BY site")
            .map_err(err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tests::sample, verify, Verified};
    use super::*;

    fn store() -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("cg-receipts-{}", super::super::new_id()));
        let path = dir.join("receipts.db");
        (SqliteStore::open(&path).unwrap(), dir)
    }

    #[test]
    fn chain_appends_verifies_and_detects_tampering() {
        let (mut s, dir) = store();
        let mut batch: Vec<Receipt> = (0..5).map(|_| sample("shop.example")).collect();
        batch.push(sample("other.example"));
        s.append(&mut batch).unwrap();
        let mut more = vec![sample("shop.example")];
        s.append(&mut more).unwrap();
        assert_eq!(more[0].prev_hash, batch[4].hash, "chained across batches");
        assert_eq!(
            verify(&mut s, "shop.example").unwrap(),
            Verified::Intact { receipts: 6 }
        );
        assert_eq!(s.get(&batch[2].id).unwrap().unwrap(), batch[2]);
        assert_eq!(s.sites().unwrap(), vec!["other.example", "shop.example"]);
        // Someone edits a stored decision.
        s.connection()
            .execute(
                "UPDATE receipts SET granted = 'youtube,meta-pixel' WHERE id = ?1",
                params![batch[3].id],
            )
            .unwrap();
        match verify(&mut s, "shop.example").unwrap() {
            Verified::Broken {
                id,
                receipts_checked,
                ..
            } => {
                assert_eq!(id, batch[3].id);
                assert_eq!(receipts_checked, 4);
            }
            v => panic!("tampering not detected: {v:?}"),
        }
        // Someone deletes a row.
        s.connection()
            .execute(
                "UPDATE receipts SET granted = 'youtube' WHERE id = ?1",
                params![batch[3].id],
            )
            .unwrap();
        s.connection()
            .execute("DELETE FROM receipts WHERE id = ?1", params![batch[1].id])
            .unwrap();
        assert!(
            matches!(verify(&mut s, "shop.example").unwrap(), Verified::Broken { id, .. } if id == batch[2].id)
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn erasure_keeps_a_tombstone_and_the_chain_verifies() {
        let (mut s, dir) = store();
        let mut batch: Vec<Receipt> = (0..3).map(|_| sample("shop.example")).collect();
        batch[1].ip = Some("203.0.113.0/24".into());
        s.append(&mut batch).unwrap();
        assert!(s.erase(&batch[1].id).unwrap());
        assert!(!s.erase("no-such-id").unwrap());
        let t = s.get(&batch[1].id).unwrap().unwrap();
        assert!(t.erased && t.ip.is_none() && t.granted.is_empty() && t.user_agent.is_empty());
        assert_eq!(t.hash, batch[1].hash);
        assert_eq!(
            verify(&mut s, "shop.example").unwrap(),
            Verified::Intact { receipts: 3 }
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn list_filters_and_purge() {
        let (mut s, dir) = store();
        let mut batch: Vec<Receipt> = (0..4).map(|_| sample("shop.example")).collect();
        for (i, r) in batch.iter_mut().enumerate() {
            r.ts_ms = 1_000 * (i as i64 + 1);
        }
        s.append(&mut batch).unwrap();
        let mut seen = Vec::new();
        s.list(Some("shop.example"), Some(2_000), Some(4_000), &mut |r| {
            seen.push(r.ts_ms);
            true
        })
        .unwrap();
        assert_eq!(seen, vec![2_000, 3_000]);
        assert_eq!(s.purge(2_500).unwrap(), 2);
        // The oldest remaining receipt anchors the chain.
        assert_eq!(
            verify(&mut s, "shop.example").unwrap(),
            Verified::Intact { receipts: 2 }
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
