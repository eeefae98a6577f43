//! Test helpers: databases on both back ends, services, a tiny HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
pub use robert_codes::clock::{manual_at, set_manual};
use robert_codes::jwt::testing;
use robert_codes::{CodesService, Config, ManualClock, SqlStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs the body once per available back end, `$db` being a [`TestDb`].
#[macro_export]
macro_rules! both_backends {
    ($name:ident, |$db:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for $db in $crate::support::backends(stringify!($name)).await {
                eprintln!("{} on {}", stringify!($name), $db.backend);
                $body
                $db.finish().await;
            }
        }
    };
}

/// A fresh database with its store.
pub struct TestDb {
    pub store: Arc<SqlStore>,
    pub backend: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn finish(self) {
        self.store.close().await;
        if let Some(name) = &self.pg_name {
            drop_pg_database(name).await;
        }
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("ROBERT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pg_url_for(name: &str) -> String {
    let admin = pg_admin_url();
    match admin.rfind('/') {
        Some(i) if !admin[..i].ends_with('/') => format!("{}/{name}", &admin[..i]),
        _ => format!("{admin}/{name}"),
    }
}

async fn drop_pg_database(name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .execute(&mut c)
            .await;
        let _ = c.close().await;
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("codes.db").display()
    );
    let store = SqlStore::open(&url, 8).await.unwrap();
    TestDb {
        store: Arc::new(store),
        backend: "sqlite",
        url,
        _dir: Some(dir),
        pg_name: None,
    }
}

pub async fn postgres(test: &str) -> Option<TestDb> {
    use sqlx::Connection as _;
    let admin = pg_admin_url();
    let mut c = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin),
    )
    .await
    {
        Ok(Ok(c)) => c,
        _ => {
            skip_or_fail(
                "ROBERT_TEST_REQUIRE_PG",
                &format!("{test}: skipped: no PostgreSQL at {admin}"),
            );
            return None;
        }
    };
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    let name = format!(
        "rc_{}_{}_{}_{}",
        short.to_lowercase(),
        std::process::id(),
        n,
        Utc::now().timestamp_subsec_nanos()
    );
    let sql = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .execute(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
    let url = pg_url_for(&name);
    let store = SqlStore::open(&url, 8).await.unwrap();
    Some(TestDb {
        store: Arc::new(store),
        backend: "postgres",
        url,
        _dir: None,
        pg_name: Some(name),
    })
}

pub async fn backends(test: &str) -> Vec<TestDb> {
    let mut v = vec![sqlite().await];
    if let Some(pg) = postgres(test).await {
        v.push(pg);
    }
    v
}

pub const PEPPER_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 × 'A'
pub const PEPPER_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 × 'B'
pub const API_KEY: &str = "test-api-key-0123456789";

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A configuration with pepper A, one JWT key (`kid` "K1", seed 7), an API
/// client "gateway" and permissive limits.
pub fn config() -> Config {
    let key = testing::public_key_b64(&testing::signing_key(7));
    let api_hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(API_KEY.as_bytes()))
    };
    let text = format!(
        r#"
[[peppers]]
id = "a"
secret = "{PEPPER_A}"

[jwt.keys]
K1 = "{key}"

[api]
verify_per_second = 10000
verify_burst = 10000

[[api.clients]]
name = "gateway"
key_sha256 = "{api_hash}"
daily_quota = 1000
per_minute = 1000

[portal]
cookie_secure = false
"#
    );
    Config::from_toml(&text).unwrap()
}

pub fn service_with(db: &TestDb, config: Config, clock: &ManualClock) -> CodesService {
    CodesService::new(config, db.store.clone(), Arc::new(clock.clone())).unwrap()
}

pub fn service(db: &TestDb, clock: &ManualClock) -> CodesService {
    service_with(db, config(), clock)
}

/// Serves `router` on 127.0.0.1 with connect info; returns the address.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Minimal HTTP/1.1 GET: returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let r = http(addr, "GET", path, headers, "").await;
    (r.status, r.body)
}

pub fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An HTTP response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of cookie `name` set by this response.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.all("set-cookie").into_iter().find_map(|c| {
            c.split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        })
    }
}

/// Minimal HTTP/1.1 request with `Connection: close`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The text of the element with `id`, in simple server-rendered HTML.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let open_end = rest.find('>')?;
    let rest = &rest[open_end + 1..];
    let close = rest.find('<')?;
    Some(rest[..close].to_owned())
}

/// The value of the hidden `csrf` input.
pub fn csrf_of(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[i..].split('"').next().unwrap().to_owned()
}

/// The workspace's target directory (for artefacts people may look at).
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Reports a test skipped because an external service or tool is missing.
/// When `env` is set to `1` (as `.ci/run` does), a missing dependency is a
/// failure instead, so CI cannot pass by skipping.
pub fn skip_or_fail(env: &str, message: &str) {
    if std::env::var(env).is_ok_and(|v| v == "1") {
        panic!("{message} ({env}=1 makes this a failure)");
    }
    eprintln!("{message}");
}
