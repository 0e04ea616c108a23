//! The PostgreSQL receipt store against a real server: this test binary starts its own
//! throwaway cluster (Debian's `postgresql` package: `/usr/lib/postgresql/<version>/bin`, or the
//! directory in `CONSENTGATE_PG_BINDIR`), on a free loopback port, with a database per test.
//! PostgreSQL refuses to run as root, so as root (CI) the cluster runs as the `postgres` user.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use consentgate::receipts::{
    new_id, now_ms, verify, Method, PgStore, Receipt, Store, StoreError, Verified,
};
use postgres::{Client, NoTls};
use rand::Rng;

const INSTALL: &str = "install postgresql: apt-get install -y postgresql";

/// A throwaway PostgreSQL cluster. Stopped and removed on drop, and, since the shared one lives
/// in a static (never dropped), also by a watchdog process when this test process exits.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// Run the server binaries as the `postgres` user (we are root).
    as_postgres: bool,
    port: u16,
    admin: Mutex<Option<Client>>,
    /// Holds the write end of the watchdog's stdin.
    _watchdog: Option<Child>,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.current_dir(&self.dir).stdin(Stdio::null());
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// A new empty database; tests never share one.
    fn database(&self, prefix: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{prefix}_{}", N.fetch_add(1, Ordering::SeqCst));
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let client = admin.get_or_insert_with(|| {
            Client::connect(&self.url("postgres"), NoTls).expect("admin connection")
        });
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        self.url(&name)
    }

    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run: {e} ({INSTALL})"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl.
fn bin_dir() -> PathBuf {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("CONSENTGATE_PG_BINDIR") {
        let d = PathBuf::from(d);
        assert!(
            has_tools(&d),
            "no initdb/pg_ctl in CONSENTGATE_PG_BINDIR={}: {INSTALL}",
            d.display()
        );
        return d;
    }
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: {INSTALL}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn start_cluster() -> Cluster {
    let bin = bin_dir();
    let as_postgres = id(&["-u"]) == Some(0);
    let dir = std::env::temp_dir().join(format!(
        "consentgate-pg-{}-{}",
        std::process::id(),
        new_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut cluster = Cluster {
        dir,
        bin,
        as_postgres,
        port: 0,
        admin: Mutex::new(None),
        _watchdog: None,
    };
    if as_postgres {
        let (Some(uid), Some(gid)) = (id(&["-u", "postgres"]), id(&["-g", "postgres"])) else {
            panic!("running as root but there is no `postgres` user: {INSTALL}");
        };
        std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid)).expect("chown temp dir");
    }
    // From here on a panic drops `cluster`, which stops and removes what was started.
    run(
        cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]),
        "initdb",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The watchdog: blocks on a pipe only this process holds (Rust opens pipes close-on-exec),
    // so it sees EOF when this process exits however it exits, then stops and removes the
    // cluster.
    let mut stop = vec![];
    if as_postgres {
        stop.extend(["runuser", "-u", "postgres", "--"].map(String::from));
    }
    stop.push(cluster.bin.join("pg_ctl").display().to_string());
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(r#"cat >/dev/null; "$@" -D "$0/data" -m immediate stop; rm -rf "$0""#)
        .arg(&cluster.dir)
        .args(&stop)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
    cluster._watchdog = Some(watchdog);

    let mut last = String::new();
    for _ in 0..3 {
        // Another process may take the port between our probe and the server's bind: retry.
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            cluster.dir.display()
        );
        let started = run(
            cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(cluster.data())
                .arg("-l")
                .arg(cluster.dir.join("log"))
                .args(["-o", &options, "-w", "-t", "30", "start"]),
            "pg_ctl start",
        );
        match started {
            Ok(()) => {
                cluster.port = port;
                return cluster;
            }
            Err(e) => {
                let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
                last = format!("{e}\n{log}");
            }
        }
    }
    panic!("cannot start PostgreSQL: {last}");
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

fn sample(site: &str) -> Receipt {
    Receipt {
        id: new_id(),
        ts_ms: now_ms(),
        site: site.into(),
        policy_version: "abcd".into(),
        lang: "en".into(),
        granted: vec!["youtube".into()],
        refused: vec!["meta-pixel".into()],
        method: Method::Save,
        gpc: false,
        user_agent: "Firefox".into(),
        ip: None,
        previous_receipt: None,
        prev_hash: String::new(),
        hash: String::new(),
        erased: false,
    }
}

/// A fresh database with the store connected, and a raw connection to tamper with it.
fn store(prefix: &str) -> (PgStore, Client) {
    let url = cluster().database(prefix);
    let store = PgStore::connect(&url).unwrap();
    (store, Client::connect(&url, NoTls).unwrap())
}

fn all(s: &mut PgStore, site: Option<&str>) -> Vec<Receipt> {
    let mut out = Vec::new();
    s.list(site, None, None, &mut |r| {
        out.push(r);
        true
    })
    .unwrap();
    out
}

#[test]
fn chain_appends_verifies_and_detects_tampering() {
    let (mut s, mut raw) = store("chain");
    let mut batch: Vec<Receipt> = (0..5).map(|_| sample("shop.example")).collect();
    batch.push(sample("other.example"));
    s.append(&mut batch).unwrap();
    let mut more = vec![sample("shop.example")];
    s.append(&mut more).unwrap();
    assert_eq!(more[0].prev_hash, batch[4].hash, "chained across batches");
    assert_eq!(batch[0].prev_hash, "", "a new chain starts from nothing");
    assert_eq!(batch[5].prev_hash, "", "each site has its own chain");
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 6 }
    );
    assert_eq!(s.get(&batch[2].id).unwrap().unwrap(), batch[2]);
    assert_eq!(s.get("no-such-id").unwrap(), None);
    assert_eq!(s.sites().unwrap(), vec!["other.example", "shop.example"]);
    // Someone edits a stored decision.
    raw.execute(
        "UPDATE consentgate_receipts SET granted = 'youtube,meta-pixel' WHERE id = $1",
        &[&batch[3].id],
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
    raw.execute(
        "UPDATE consentgate_receipts SET granted = 'youtube' WHERE id = $1",
        &[&batch[3].id],
    )
    .unwrap();
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 6 }
    );
    raw.execute(
        "DELETE FROM consentgate_receipts WHERE id = $1",
        &[&batch[1].id],
    )
    .unwrap();
    assert!(
        matches!(verify(&mut s, "shop.example").unwrap(), Verified::Broken { id, .. } if id == batch[2].id)
    );
    assert_eq!(
        verify(&mut s, "other.example").unwrap(),
        Verified::Intact { receipts: 1 }
    );
}

#[test]
fn every_field_round_trips() {
    let (mut s, _) = store("fields");
    let mut a = sample("bäckerei.example");
    a.gpc = true;
    a.ip = Some("2001:db8:85a3::/48".into());
    a.previous_receipt = Some(new_id());
    a.granted = vec![];
    a.refused = vec!["youtube".into(), "meta-pixel".into(), "hotjar".into()];
    a.method = Method::Revoke;
    a.lang = "de".into();
    a.ts_ms = 1_700_000_000_123;
    a.user_agent = "Safari".into();
    let mut b = sample("bäckerei.example");
    b.method = Method::AcceptAll;
    b.ip = Some("203.0.113.0/24".into());
    let mut batch = vec![a, b];
    s.append(&mut batch).unwrap();
    for r in &batch {
        assert_eq!(s.get(&r.id).unwrap().as_ref(), Some(r));
    }
    assert_eq!(all(&mut s, None), batch);
    // A duplicate id fails the whole batch, which leaves nothing behind.
    let mut dup = vec![sample("bäckerei.example"), batch[0].clone()];
    assert!(s.append(&mut dup).is_err());
    assert_eq!(s.get(&dup[0].id).unwrap(), None);
    s.append(&mut []).unwrap();
    assert_eq!(
        verify(&mut s, "bäckerei.example").unwrap(),
        Verified::Intact { receipts: 2 }
    );
}

#[test]
fn erasure_keeps_a_tombstone_and_the_chain_verifies() {
    let (mut s, _) = store("erase");
    let mut batch: Vec<Receipt> = (0..3).map(|_| sample("shop.example")).collect();
    batch[1].ip = Some("203.0.113.0/24".into());
    batch[1].gpc = true;
    batch[1].previous_receipt = Some(batch[0].id.clone());
    s.append(&mut batch).unwrap();
    assert!(s.erase(&batch[1].id).unwrap());
    assert!(!s.erase("no-such-id").unwrap());
    let t = s.get(&batch[1].id).unwrap().unwrap();
    assert!(t.erased && t.ip.is_none() && t.granted.is_empty() && t.user_agent.is_empty());
    assert_eq!(t.hash, batch[1].hash);
    assert_eq!(t.prev_hash, batch[1].prev_hash);
    // Exactly what the model's tombstone clears, as in SQLite.
    let mut expected = batch[1].clone();
    expected.tombstone();
    assert_eq!(t, expected);
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 3 }
    );
    // Erasing twice is harmless; the chain goes on after a tombstone.
    assert!(s.erase(&batch[1].id).unwrap());
    let mut more = vec![sample("shop.example")];
    s.append(&mut more).unwrap();
    assert_eq!(more[0].prev_hash, batch[2].hash);
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 4 }
    );
}

#[test]
fn list_filters_and_purge() {
    let (mut s, _) = store("list");
    let mut batch: Vec<Receipt> = (0..4).map(|_| sample("shop.example")).collect();
    for (i, r) in batch.iter_mut().enumerate() {
        r.ts_ms = 1_000 * (i as i64 + 1);
    }
    let mut other = sample("other.example");
    other.ts_ms = 2_500;
    batch.insert(2, other);
    s.append(&mut batch).unwrap();
    let ts = |s: &mut PgStore, site: Option<&str>, from: Option<i64>, to: Option<i64>| {
        let mut seen = Vec::new();
        s.list(site, from, to, &mut |r| {
            seen.push(r.ts_ms);
            true
        })
        .unwrap();
        seen
    };
    assert_eq!(
        ts(&mut s, Some("shop.example"), Some(2_000), Some(4_000)),
        vec![2_000, 3_000]
    );
    assert_eq!(
        ts(&mut s, Some("shop.example"), Some(3_000), None),
        vec![3_000, 4_000]
    );
    assert_eq!(
        ts(&mut s, Some("shop.example"), None, Some(2_000)),
        vec![1_000]
    );
    // Chain order: by site, then oldest first.
    assert_eq!(
        ts(&mut s, None, None, None),
        vec![2_500, 1_000, 2_000, 3_000, 4_000]
    );
    assert_eq!(
        ts(&mut s, None, Some(2_000), Some(3_000)),
        vec![2_500, 2_000]
    );
    assert!(ts(&mut s, Some("nobody.example"), None, None).is_empty());
    // `each` stops the walk.
    let mut n = 0;
    s.list(None, None, None, &mut |_| {
        n += 1;
        n < 2
    })
    .unwrap();
    assert_eq!(n, 2);

    assert_eq!(s.purge(2_500).unwrap(), 2);
    // The oldest remaining receipt anchors the chain.
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 2 }
    );
    let mut more = vec![sample("shop.example")];
    s.append(&mut more).unwrap();
    assert_eq!(more[0].prev_hash, batch[4].hash);
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 3 }
    );
    assert_eq!(s.purge(i64::MAX).unwrap(), 4);
    assert!(s.sites().unwrap().is_empty());
    // As in SQLite, a site whose receipts were all purged starts a new chain.
    let mut fresh = vec![sample("shop.example")];
    s.append(&mut fresh).unwrap();
    assert_eq!(fresh[0].prev_hash, "");
}

#[test]
fn a_large_export_streams_in_chain_order() {
    let (mut s, _) = store("export");
    let mut expected_a = Vec::new();
    for _ in 0..6 {
        let mut batch: Vec<Receipt> = (0..250)
            .map(|i| sample(if i % 3 == 0 { "a.example" } else { "b.example" }))
            .collect();
        s.append(&mut batch).unwrap();
        expected_a.extend(
            batch
                .into_iter()
                .filter(|r| r.site == "a.example")
                .map(|r| r.id),
        );
    }
    let listed = all(&mut s, None);
    assert_eq!(listed.len(), 1_500, "more rows than one fetch");
    let by_site = |site: &str| -> Vec<&str> {
        listed
            .iter()
            .filter(|r| r.site == site)
            .map(|r| r.id.as_str())
            .collect()
    };
    assert!(
        by_site("a.example") == expected_a,
        "a.example in append order"
    );
    assert!(listed[..expected_a.len()]
        .iter()
        .all(|r| r.site == "a.example"));
    assert_eq!(
        verify(&mut s, "b.example").unwrap(),
        Verified::Intact {
            receipts: (1_500 - expected_a.len()) as u64
        }
    );
    let mut n = 0;
    s.list(None, None, None, &mut |_| {
        n += 1;
        n < 700
    })
    .unwrap();
    assert_eq!(n, 700);
    // The connection is usable after a walk stopped midway.
    assert_eq!(s.sites().unwrap(), vec!["a.example", "b.example"]);
}

#[test]
fn sites_sort_bytewise_whatever_the_database_locale() {
    // A database whose default collation sorts "a" before "B" (ICU, English); SQLite, and so the
    // store, sorts bytewise.
    let c = cluster();
    let name = format!("icu_{}", std::process::id());
    {
        let mut admin = c.admin.lock().unwrap_or_else(|e| e.into_inner());
        let client =
            admin.get_or_insert_with(|| Client::connect(&c.url("postgres"), NoTls).unwrap());
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' \
                 LOCALE 'C.UTF-8'"
            ))
            .expect("an ICU database (PostgreSQL 15 or later, built with ICU)");
    }
    let url = c.url(&name);
    let mut raw = Client::connect(&url, NoTls).unwrap();
    let natural: Vec<String> = raw
        .query("SELECT x FROM (VALUES ('a'), ('B')) v(x) ORDER BY x", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(natural, vec!["a", "B"], "the database's own order differs");
    let mut s = PgStore::connect(&url).unwrap();
    let mut batch = vec![
        sample("a.example"),
        sample("B.example"),
        sample("ä.example"),
        sample("Z.example"),
    ];
    s.append(&mut batch).unwrap();
    let sites = s.sites().unwrap();
    assert_eq!(
        sites,
        vec!["B.example", "Z.example", "a.example", "ä.example"]
    );
    let listed: Vec<String> = all(&mut s, None).into_iter().map(|r| r.site).collect();
    assert_eq!(listed, sites);
}

/// Four proxy instances append to the same two sites at once.
#[test]
fn concurrent_instances_keep_one_chain_per_site() {
    const INSTANCES: usize = 4;
    const ROUNDS: usize = 50;
    let url = cluster().database("concurrent");
    let barrier = Arc::new(Barrier::new(INSTANCES));
    let started = Instant::now();
    let threads: Vec<_> = (0..INSTANCES)
        .map(|t| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = PgStore::connect(&url).unwrap();
                let mut rng = rand::thread_rng();
                let mut written = Vec::new();
                let mut batches = 0;
                barrier.wait();
                for round in 0..ROUNDS {
                    let mut plan = vec![vec!["shared.example"], vec!["second.example"]];
                    if round % 10 == t {
                        // A batch spanning both sites, in an order that differs by instance:
                        // the writers must not deadlock on each other's chain locks.
                        plan.push(if t % 2 == 0 {
                            vec!["shared.example", "second.example"]
                        } else {
                            vec!["second.example", "shared.example"]
                        });
                    }
                    for sites in plan {
                        let n = rng.gen_range(1..=5);
                        let mut batch: Vec<Receipt> =
                            (0..n).map(|i| sample(sites[i % sites.len()])).collect();
                        s.append(&mut batch).unwrap();
                        batches += 1;
                        written.extend(batch);
                    }
                }
                (written, batches)
            })
        })
        .collect();
    let mut written = Vec::new();
    let mut batches = 0;
    for t in threads {
        let (w, b) = t.join().unwrap();
        written.extend(w);
        batches += b;
    }
    let elapsed = started.elapsed();

    let mut s = PgStore::connect(&url).unwrap();
    for site in ["shared.example", "second.example"] {
        let expected = written.iter().filter(|r| r.site == site).count() as u64;
        assert_eq!(
            verify(&mut s, site).unwrap(),
            Verified::Intact { receipts: expected },
            "{site}"
        );
    }
    let stored = all(&mut s, None);
    assert_eq!(stored.len(), written.len());
    let ids: HashSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "every receipt once");
    // Each instance got back exactly what was stored.
    let by_id: HashMap<&str, &Receipt> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
    for r in &written {
        assert_eq!(by_id.get(r.id.as_str()), Some(&r), "receipt {}", r.id);
    }
    // Each site's head row holds its chain's tip.
    let mut raw = Client::connect(&url, NoTls).unwrap();
    for site in ["shared.example", "second.example"] {
        let tip: String = raw
            .query_one(
                "SELECT hash FROM consentgate_chain_heads WHERE site = $1",
                &[&site],
            )
            .unwrap()
            .get(0);
        let last = stored.iter().rfind(|r| r.site == site).unwrap();
        assert_eq!(tip, last.hash);
    }
    let _ = writeln!(
        std::io::stderr(),
        "concurrency: {INSTANCES} instances, {batches} batches, {} receipts in {elapsed:.2?}",
        written.len()
    );
}

/// Several instances starting at once on an empty database all create/migrate the schema.
#[test]
fn concurrent_schema_creation_does_not_fail() {
    const INSTANCES: usize = 8;
    for _ in 0..3 {
        let url = cluster().database("schema");
        let barrier = Arc::new(Barrier::new(INSTANCES));
        let results: Vec<Result<PgStore, StoreError>> = (0..INSTANCES)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PgStore::connect(&url)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        for (i, r) in results.into_iter().enumerate() {
            let mut s = r.unwrap_or_else(|e| panic!("instance {i}: {e}"));
            let mut batch = vec![sample("shop.example")];
            s.append(&mut batch).unwrap();
        }
        let mut raw = Client::connect(&url, NoTls).unwrap();
        let versions: Vec<i32> = raw
            .query("SELECT version FROM consentgate_schema", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, vec![1]);
        // Connecting again changes nothing.
        let mut s = PgStore::connect(&url).unwrap();
        assert_eq!(
            verify(&mut s, "shop.example").unwrap(),
            Verified::Intact {
                receipts: INSTANCES as u64
            }
        );
    }
}

#[test]
fn a_store_that_is_down_is_an_error_not_a_panic() {
    // Nothing listens on a port we just released.
    let port = free_port();
    let t = Instant::now();
    let e = PgStore::connect(&format!("host=127.0.0.1 port={port} user=postgres"))
        .err()
        .expect("no server");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("cannot connect to 127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/x"))
        .err()
        .expect("no server");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    // A URL that does not parse.
    let e = PgStore::connect("postgres://127.0.0.1:notaport/x")
        .err()
        .expect("bad url");
    assert!(
        e.to_string().contains("bad URL") && e.to_string().contains("port"),
        "{e}"
    );
}

#[test]
fn a_lost_connection_fails_one_call_then_reconnects() {
    let (mut s, mut raw) = store("reconnect");
    let mut batch = vec![sample("shop.example")];
    s.append(&mut batch).unwrap();
    // The database drops every other session (a restart, a failover).
    raw.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .unwrap();
    let mut lost = vec![sample("shop.example")];
    let e = s.append(&mut lost).expect_err("the connection is gone");
    assert!(e.to_string().starts_with("receipt store: postgres"), "{e}");
    let mut again = vec![sample("shop.example")];
    s.append(&mut again).unwrap();
    assert_eq!(again[0].prev_hash, batch[0].hash);
    assert_eq!(
        verify(&mut s, "shop.example").unwrap(),
        Verified::Intact { receipts: 2 }
    );
}
