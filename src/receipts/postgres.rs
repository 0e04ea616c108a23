//! The shared receipt store: PostgreSQL (or any database speaking its wire protocol), for
//! deployments with several proxy instances. Behaves like [`super::SqliteStore`]; what differs
//! is how one chain per site is kept while many instances append at once.
//!
//! # One chain per site, many writers
//!
//! Every site has a row in `consentgate_chain_heads`. `append` creates the rows it needs
//! (`INSERT ... ON CONFLICT DO NOTHING`) and locks them (`SELECT ... FOR UPDATE`, in sorted site
//! order so that two batches spanning the same sites cannot deadlock), then reads each site's last
//! hash (`ORDER BY seq DESC LIMIT 1`), seals, inserts, records the new tip in the head row and
//! commits. The row lock serializes the writers of one site and only of that site; seq values are
//! taken while it is held, so within a site seq order is chain order. This is plain SQL, so it also
//! works on PostgreSQL-wire clustered databases (CockroachDB, YugabyteDB) that lack advisory
//! locks (`pg_advisory_xact_lock(hashtextextended(site, 0))` would be the PostgreSQL-only
//! alternative). Transactions run at READ COMMITTED, where each statement sees what the previous
//! lock holder committed; databases that only offer SERIALIZABLE abort one side of a conflict
//! instead (SQLSTATE 40001), and `append` retries such aborts from the start.
//!
//! On CockroachDB, `BIGSERIAL` defaults to `unique_rowid()`, which is only roughly ordered across
//! nodes; set `serial_normalization = 'sql_sequence'` there before the first connect so seq keeps
//! chain order.
//!
//! # Schema
//!
//! Created on connect and versioned in `consentgate_schema` (one row). Migrations run in one
//! transaction holding that row `FOR UPDATE`, so instances starting together apply each at most
//! once; creating the version table itself races harmlessly (the loser's duplicate-object error is
//! retried and then finds the table).

use std::collections::BTreeSet;
use std::error::Error as _;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, IsolationLevel, NoTls, Row};

use super::{split_ids, Method, Receipt, Store, StoreError};

/// The schema version this build migrates to.
const SCHEMA_VERSION: i32 = 1;

const BOOTSTRAP: &str = "
CREATE TABLE IF NOT EXISTS consentgate_schema (
    id INT PRIMARY KEY CHECK (id = 1),
    version INT NOT NULL
);
INSERT INTO consentgate_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
";

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // `COLLATE "C"`: sites sort bytewise whatever the database's locale, as in SQLite.
    r#"
CREATE TABLE IF NOT EXISTS consentgate_receipts (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    site TEXT COLLATE "C" NOT NULL,
    policy_version TEXT NOT NULL,
    lang TEXT NOT NULL,
    granted TEXT NOT NULL,
    refused TEXT NOT NULL,
    method TEXT NOT NULL,
    gpc BOOLEAN NOT NULL,
    user_agent TEXT NOT NULL,
    ip TEXT,
    previous_receipt TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    erased BOOLEAN NOT NULL DEFAULT FALSE,
    CONSTRAINT consentgate_receipts_id_key UNIQUE (id)
);
CREATE INDEX IF NOT EXISTS consentgate_receipts_site_seq ON consentgate_receipts (site, seq);
CREATE INDEX IF NOT EXISTS consentgate_receipts_ts ON consentgate_receipts (ts_ms);
CREATE TABLE IF NOT EXISTS consentgate_chain_heads (
    site TEXT COLLATE "C" PRIMARY KEY,
    hash TEXT NOT NULL
);
"#,
];

const COLUMNS: &str = "id, ts_ms, site, policy_version, lang, granted, refused, method, gpc, \
                       user_agent, ip, previous_receipt, prev_hash, hash, erased";

/// Rows fetched per round trip by `list`: a large export streams, it is never held in memory.
const LIST_CHUNK: i32 = 500;

/// Attempts for a transaction the database aborted to resolve a conflict.
const ATTEMPTS: u32 = 8;

/// Used when the URL sets no `connect_timeout`: a store that is down must not hang startup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn err(e: postgres::Error) -> StoreError {
    StoreError::Backend(describe(&e))
}

/// The error with its causes (the driver's own message says little: "db error").
fn describe(e: &postgres::Error) -> String {
    let mut msg = format!("postgres: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(code) = e.code() {
        msg.push_str(&format!(" (SQLSTATE {})", code.code()));
    }
    msg
}

/// A conflict the database resolved by aborting this transaction: safe to run it again.
fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A concurrent `CREATE ... IF NOT EXISTS` won the race for the same name.
fn is_duplicate_object(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
    )
}

/// Runs `f` again (a few times, briefly backing off) while it fails with an error `retry` accepts.
fn retrying<T>(
    retry: impl Fn(&postgres::Error) -> bool,
    mut f: impl FnMut() -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if attempt < ATTEMPTS && retry(&e) => {
                let jitter = u64::from(rand::random::<u8>() % 10);
                std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter));
                attempt += 1;
            }
            r => return r,
        }
    }
}

fn receipt(r: &Row) -> Result<Receipt, postgres::Error> {
    let method: String = r.try_get(7)?;
    Ok(Receipt {
        id: r.try_get(0)?,
        ts_ms: r.try_get(1)?,
        site: r.try_get(2)?,
        policy_version: r.try_get(3)?,
        lang: r.try_get(4)?,
        granted: split_ids(r.try_get(5)?),
        refused: split_ids(r.try_get(6)?),
        // An unknown method can only come from a foreign write; verification then fails on
        // the hash, which is the right signal.
        method: Method::parse(&method).unwrap_or(Method::Save),
        gpc: r.try_get(8)?,
        user_agent: r.try_get(9)?,
        ip: r.try_get(10)?,
        previous_receipt: r.try_get(11)?,
        prev_hash: r.try_get(12)?,
        hash: r.try_get(13)?,
        erased: r.try_get(14)?,
    })
}

/// A PostgreSQL receipt store: one connection, reopened on the next call after it is lost.
pub struct PgStore {
    config: Config,
    client: Client,
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or a libpq `key=value` string) and creates or
    /// migrates the schema. TLS is not negotiated: reach the database over a trusted network or
    /// a local TLS-terminating sidecar.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("bad URL: {}", describe(&e))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("consentgate");
        }
        let client = open(&config)?;
        let mut store = PgStore { config, client };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let client = &mut self.client;
        retrying(is_duplicate_object, || client.batch_execute(BOOTSTRAP)).map_err(err)?;
        let found = retrying(is_conflict, || {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()?;
            let version: i32 = tx
                .query_one(
                    "SELECT version FROM consentgate_schema WHERE id = 1 FOR UPDATE",
                    &[],
                )?
                .try_get(0)?;
            for (from, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
                tx.batch_execute(sql)?;
                tx.execute(
                    "UPDATE consentgate_schema SET version = $1 WHERE id = 1",
                    &[&(from as i32 + 1)],
                )?;
            }
            tx.commit()?;
            Ok(version)
        })
        .map_err(err)?;
        if found > SCHEMA_VERSION {
            // A newer consentgate migrated this database (a rolling upgrade): its migrations
            // only add, so this version keeps working.
            tracing::warn!(
                found,
                expected = SCHEMA_VERSION,
                "receipt store schema is newer than this consentgate"
            );
        }
        Ok(())
    }

    /// The connection, reopened if the last call found it closed (a database restart, a
    /// failover): the call that saw it break has already failed, the next one works again.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_closed() {
            self.client = open(&self.config)?;
        }
        Ok(&mut self.client)
    }
}

fn open(config: &Config) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|e| {
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    postgres::config::Host::Tcp(h) => h.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                };
                let port = config
                    .get_ports()
                    .get(i)
                    .or(config.get_ports().first())
                    .copied()
                    .unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        StoreError::Backend(format!(
            "cannot connect to {}: {}",
            hosts.join(", "),
            describe(&e)
        ))
    })
}

impl Store for PgStore {
    fn append(&mut self, receipts: &mut [Receipt]) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        // Sorted, so that every writer locks heads in the same order.
        let sites: BTreeSet<String> = receipts.iter().map(|r| r.site.clone()).collect();
        let client = self.client()?;
        retrying(is_conflict, || {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()?;
            let mut last = std::collections::HashMap::new();
            for site in &sites {
                tx.execute(
                    "INSERT INTO consentgate_chain_heads (site, hash) VALUES ($1, '') \
                     ON CONFLICT (site) DO NOTHING",
                    &[site],
                )?;
                tx.query_one(
                    "SELECT hash FROM consentgate_chain_heads WHERE site = $1 FOR UPDATE",
                    &[site],
                )?;
                // The chain continues from the last stored receipt, as in SQLite (after a purge
                // of everything, a new chain starts).
                let prev: String = tx
                    .query_opt(
                        "SELECT hash FROM consentgate_receipts WHERE site = $1 \
                         ORDER BY seq DESC LIMIT 1",
                        &[site],
                    )?
                    .map(|r| r.try_get(0))
                    .transpose()?
                    .unwrap_or_default();
                last.insert(site.as_str(), prev);
            }
            let insert = tx.prepare(&format!(
                "INSERT INTO consentgate_receipts ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ))?;
            for r in receipts.iter_mut() {
                let prev = last.get_mut(r.site.as_str()).expect("locked above");
                r.seal(prev);
                tx.execute(
                    &insert,
                    &[
                        &r.id,
                        &r.ts_ms,
                        &r.site,
                        &r.policy_version,
                        &r.lang,
                        &r.granted.join(","),
                        &r.refused.join(","),
                        &r.method.as_str(),
                        &r.gpc,
                        &r.user_agent,
                        &r.ip,
                        &r.previous_receipt,
                        &r.prev_hash,
                        &r.hash,
                        &r.erased,
                    ],
                )?;
                prev.clone_from(&r.hash);
            }
            // The tip, for audits: a chain whose last receipt is not this one lost its tail.
            for (site, hash) in &last {
                tx.execute(
                    "UPDATE consentgate_chain_heads SET hash = $2 WHERE site = $1",
                    &[site, hash],
                )?;
            }
            tx.commit()
        })
        .map_err(err)
    }

    fn get(&mut self, id: &str) -> Result<Option<Receipt>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM consentgate_receipts WHERE id = $1"),
                &[&id],
            )
            .map_err(err)?;
        row.as_ref().map(receipt).transpose().map_err(err)
    }

    fn erase(&mut self, id: &str) -> Result<bool, StoreError> {
        // The same fields as `Receipt::tombstone`; hash and prev_hash stay.
        let n = self
            .client()?
            .execute(
                "UPDATE consentgate_receipts SET lang = '', granted = '', refused = '', \
                 user_agent = '', ip = NULL, previous_receipt = NULL, gpc = FALSE, erased = TRUE \
                 WHERE id = $1",
                &[&id],
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
        let mut conditions = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let site = site.map(str::to_string);
        if let Some(s) = &site {
            params.push(s);
            conditions.push(format!("site = ${}", params.len()));
        }
        if let Some(t) = &from_ms {
            params.push(t);
            conditions.push(format!("ts_ms >= ${}", params.len()));
        }
        if let Some(t) = &to_ms {
            params.push(t);
            conditions.push(format!("ts_ms < ${}", params.len()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!("SELECT {COLUMNS} FROM consentgate_receipts{filter} ORDER BY site, seq");
        // A portal read in chunks: one snapshot for the whole walk, bounded memory.
        let mut tx = self
            .client()?
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(err)?;
        let portal = tx.bind(sql.as_str(), &params).map_err(err)?;
        loop {
            let rows = tx.query_portal(&portal, LIST_CHUNK).map_err(err)?;
            for row in &rows {
                if !each(receipt(row).map_err(err)?) {
                    return tx.commit().map_err(err);
                }
            }
            if rows.len() < LIST_CHUNK as usize {
                return tx.commit().map_err(err);
            }
        }
    }

    fn purge(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        self.client()?
            .execute(
                "DELETE FROM consentgate_receipts WHERE ts_ms < $1",
                &[&before_ms],
            )
            .map_err(err)
    }

    fn sites(&mut self) -> Result<Vec<String>, StoreError> {
        self.client()?
            .query(
                "SELECT DISTINCT site FROM consentgate_receipts ORDER BY site",
                &[],
            )
            .map_err(err)?
            .iter()
            .map(|r| r.try_get(0).map_err(err))
            .collect()
    }
}
